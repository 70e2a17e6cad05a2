// Package builds is Berth's custom image builds as tasks (issue #7): the
// /api/v1/builds/ REST API, the container.build task that runs buildah
// through package build, the bounded build logs that clients follow while a
// build runs, and the PENDING/READY/FAILED status of built images.
//
// The shape of the package:
//
//	service.go    the API's side: create, rebuild, read, list, cancel,
//	              image status; authorization on the target's namespace
//	request.go    what clients send (package lists as arrays or one text
//	              block) and the build.Spec it becomes
//	base.go       a base image without a registry host is Berth's own when
//	              Berth serves that name
//	handler.go    the container.build task on the "builds" queue
//	logs.go       the build log: written in batches by the task, read and
//	              followed by the API, from the database (so that a serve
//	              process can stream what a worker on another machine writes)
//	routes.go     thin HTTP handlers
//	store.go      every SQL statement of the package
//
// # Phases
//
// A build is pending until its task runs, then running, then succeeded,
// failed or cancelled. While the task is waiting or running the phase is
// derived from the task's state; the task records the final phase, the
// image digest or the reason of the failure on the build when it ends. A
// build whose worker was lost ends failed all the same: its task's state
// decides then.
//
// # Credentials
//
// The base image's pull credentials are sealed with the server's secret key
// (core/secret) and never shown, logged or put on a command line. Pushes to
// Berth's own registry (and pulls of Berth's own base images) use a registry
// login token of the build's creator, created when the build starts, valid
// for the build's time limit only, and revoked when the build ends: the
// build can push where its creator may push, and nowhere else.
package builds
