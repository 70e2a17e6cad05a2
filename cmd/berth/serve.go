package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/app"
	"github.com/berth-dev/berth/internal/config"
)

func newServeCmd() *cobra.Command {
	s := &settings{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the REST API and the /v2/ registry (and, without Redis, the task workers)",
		Long: `serve runs Berth's HTTP server: the REST API under /pulp/api/v3/ and
/api/v1/, the OCI registry under /v2/, and the token endpoint /token.

It migrates the database on start and creates the first admin user (password
from BERTH_ADMIN_PASSWORD, or a random one printed once).

Without BERTH_REDIS_URL, tasks (syncs, builds, deletions) run on workers
inside this process. With it, they run on 'berth worker' processes.`,
		Example: `  berth serve
  BERTH_LISTEN=0.0.0.0:5001 BERTH_DATABASE_URL=postgres://berth@db/berth BERTH_REDIS_URL=redis://redis:6379/0 berth serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runApp(cmd, s, true, (*app.App).Serve)
		},
	}
	s.runtimeFlags(cmd.Flags())
	d := &s.cfg
	e := &s.env
	cmd.Flags().StringVar(&d.Listen, "listen", e.String("LISTEN", "localhost:5001"), "address to listen on (BERTH_LISTEN)")
	cmd.Flags().StringVar(&d.PublicURL, "public-url", e.String("PUBLIC_URL", ""), "external URL of this server, for token realms and pull strings; default http://LISTEN (BERTH_PUBLIC_URL)")
	cmd.Flags().StringVar(&d.AdminPassword, "admin-password", e.String("ADMIN_PASSWORD", ""), "password of the first admin user; random and printed once if unset (BERTH_ADMIN_PASSWORD)")
	cmd.Flags().IntVar(&d.Workers, "workers", e.Int("WORKERS", 2), "concurrent tasks of the in-process workers when there is no Redis (BERTH_WORKERS)")
	cmd.Flags().BoolVar(&d.AccessLog, "access-log", e.Bool("ACCESS_LOG", true), "log one line per HTTP request (BERTH_ACCESS_LOG)")
	cmd.Flags().StringSliceVar(&d.ControllerURLs, "controller-urls", config.SplitList(e.String("CONTROLLER_URLS", "")), "Ansible controller URLs (comma-separated) that \"Use in Controller\" links of execution environments open (BERTH_CONTROLLER_URLS)")
	return cmd
}

func newWorkerCmd() *cobra.Command {
	s := &settings{}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a task worker (needs Redis; run as many as you like)",
		Long: `worker runs tasks — syncs, builds, deletions — that 'berth serve' and the
API dispatch. Workers find tasks through Redis (BERTH_REDIS_URL) and record
everything in the database (BERTH_DATABASE_URL), so any number of workers on
any machines may run beside any number of serve replicas.

A worker whose heartbeat stops (it crashed, or its machine did) is declared
lost after BERTH_WORKER_TIMEOUT; its running tasks fail with "worker lost",
or run again if they are safe to repeat.`,
		Example: `  BERTH_DATABASE_URL=postgres://berth@db/berth BERTH_REDIS_URL=redis://redis:6379/0 berth worker`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runApp(cmd, s, false, (*app.App).Work)
		},
	}
	s.runtimeFlags(cmd.Flags())
	e := &s.env
	cmd.Flags().StringVar(&s.cfg.WorkerName, "name", e.String("WORKER_NAME", ""), "worker name shown in the API; default host-pid-random (BERTH_WORKER_NAME)")
	cmd.Flags().IntVar(&s.cfg.Workers, "concurrency", e.Int("WORKERS", 2), "tasks this worker runs at once (BERTH_WORKERS)")
	return cmd
}

// runApp opens the application from the command's settings (migrating the
// database when migrate is set) and runs it until the command's context ends.
func runApp(cmd *cobra.Command, s *settings, migrate bool, run func(*app.App, context.Context) error) error {
	cfg, err := s.validate()
	if err != nil {
		return err
	}
	a, err := app.Open(cmd.Context(), cfg, app.NewLogger(cfg), version, migrate)
	if err != nil {
		return err
	}
	defer a.Close()
	return run(a, cmd.Context())
}
