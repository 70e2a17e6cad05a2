// Package build builds custom container images with buildah: the reusable
// core of "custom image builds as tasks" (issue #7).
//
// A build starts from a [Spec] in one of two modes:
//
//   - Package mode: a base image plus APT, Conda and Pip packages, one per
//     line as the user typed them. [Spec.Validate] checks every line against
//     the grammar its package manager accepts and names each bad line;
//     [Spec.Render] turns the spec into a Containerfile.
//   - Raw mode: the user's own Containerfile, optionally with a build context
//     uploaded as a tar archive ([ExtractContext]).
//
// A [Runner] then runs buildah for a [Job] (a Containerfile, its context and
// the references to push to) in a work directory of its own, streams the
// combined output line by line, pushes the image, and removes the work
// directory, also when the context is canceled.
//
// # Package lines
//
// Blanks around a line are ignored, and so are blank lines, lines starting
// with '#' and comments after white space ("numpy  # arrays"), as in pip's
// requirement files. Every other line must be valid for its package manager,
// or validation names it ("line 3: …") and says why; no line is ever dropped
// silently. Lines hold printable ASCII only, at most [MaxLineLength] bytes,
// and none may start with '-' (options), except conda's "-c channel::".
//
// # APT lines
//
// APT lines name one Debian package each, in the forms apt-get install takes:
//
//	name              curl
//	name=version      git=1:2.39.2-1.1   (Debian policy: [epoch:]upstream[-revision], '~' allowed)
//	name/release      vim/bookworm-backports
//	name:arch         libc6:i386          (also with =version or /release)
//
// Package names follow Debian policy: lower-case letters, digits, '+', '-'
// and '.', at least two characters, starting with a letter or digit. A name
// may not end with '-', which apt-get reads as "remove this package".
//
// # Pip lines
//
// Pip lines are PEP 508 requirement specifiers, one per line, as pip install
// takes them:
//
//	numpy
//	numpy==1.26.*
//	pkg[extra1,extra2]>=1,<2
//	requests ; python_version < "3.11"
//	name @ https://example.com/name-1.0-py3-none-any.whl#sha256=…
//	name @ git+https://github.com/org/name.git@v1.0
//
// Versions follow PEP 440 with the operator's own rules (a ".*" suffix only
// after == and !=, "~=" needs two release numbers, no local version in
// ordered comparisons). Environment markers are parsed with the PEP 508
// grammar; their strings may not hold the characters $ ` \ ; & | < > (PEP 508
// allows them, no marker value needs them, and a shell would read them).
//
// URL requirements ("name @ URL") are accepted because they pin one
// requirement to one archive or repository, unlike the --index-url and
// --extra-index-url options, which redirect every package and are refused
// with all other options. They must use https:// or git+https:// (no
// plain-text transport) and hold no user name or password (the line ends up
// in the image history). Bare paths and URLs without a name, requirement
// files (-r), editable installs (-e) and per-requirement options (--hash) are
// refused.
//
// # Conda lines
//
// Conda lines are conda match specifications, one per line:
//
//	numpy
//	numpy==1.17*            numpy>=1.17,<2        numpy 1.17|1.18
//	numpy=1.17=py39*        numpy 1.17.* py39_0   (version and build)
//	numpy[version='>=1.17', build=py39*]
//	conda-forge::numpy      conda-forge/linux-64::numpy==1.17*
//	-c conda-forge::numpy==1.17*
//
// The last form is PrimeHub's: "-c channel::" names the channel the package
// comes from. The channels of the "-c channel::" and "channel::" forms are
// collected and passed to conda install with -c (in the order they first
// appear), and each spec keeps its "channel::" prefix, so conda both searches
// the channel for dependencies and takes the package from it. Channels are
// names (with optional "/label/…" parts and subdir), not URLs. Conda's
// "channel:namespace:name" form is not supported.
//
// # Security model
//
// Package lines never reach a shell: the generated Containerfile passes them
// as arguments of exec-form (JSON array) RUN instructions, and validation
// also rejects what no package manager needs (options, control characters,
// shell metacharacters outside the places the grammars use them). Only
// constant commands (apt-get update, removing the apt lists) use the shell
// form. Registry credentials are written to 0600 auth files inside the work
// directory, never to the command line, the logs or the JSON form of a spec;
// buildah runs with HOME, DOCKER_CONFIG and XDG_CONFIG_HOME pointing into the
// work directory so that it cannot fall back to the worker's own registry
// logins. Plain-HTTP or unverified TLS is allowed per registry host only
// ([WithInsecureRegistries]).
//
// Builds are not sandboxed. With --isolation chroot, RUN steps, and so the
// install scripts of every apt, conda and pip package, run as root on the
// worker, share its network (loopback services such as PostgreSQL and Redis
// included) and see its processes; chroot is no security boundary for root.
// Run build workers on dedicated, disposable machines without access to
// Berth's database, queue or secret key, and let only trusted users build.
//
// # Task wiring
//
// The task that builds a spec is expected to:
//
//  1. validate the spec ([Spec.Validate]);
//  2. read the base image's user ([Runner.BaseUser]);
//  3. make a job ([Spec.Job]) and add the credentials Berth pushes with;
//  4. run it ([Runner.Run]) in a fresh work directory, with the task's
//     context and log writer (for example a [HeadTail] buffer).
package build
