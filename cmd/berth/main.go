// Command berth is the Berth container registry and image platform: the
// server (REST API and /v2/ content app), task workers, schema migrations and
// operator commands, all in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "berth:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Berth: a container registry and image platform",
		Long: `Berth is a container registry that podman, docker, skopeo and crane push to
and pull from (/v2/, the OCI Distribution API), with versioned repositories,
remotes and mirrors, image builds and a REST API whose long work runs as tasks.

Start it with 'berth serve' (the embedded default needs nothing else: SQLite,
files and in-process workers under the data directory). For production, point
BERTH_DATABASE_URL at PostgreSQL and BERTH_REDIS_URL at Redis, and run
'berth worker' processes beside it.

Every flag can also be set with the BERTH_* environment variable named in its
help.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newServeCmd(), newWorkerCmd(), newMigrateCmd(), newAdminCmd())
	root.AddCommand(clientCommands()...)
	return root
}
