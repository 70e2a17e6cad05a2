package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/app"
	"github.com/berth-dev/berth/core/db"
)

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Show or apply database schema migrations",
		Long: `migrate manages the database schema of the core and of each plugin.
'berth serve' applies pending migrations on start; use 'migrate up' to do it
by hand (before starting workers of a new version, say) and 'migrate status'
to see where a database stands.`,
	}
	cmd.AddCommand(migrateSub("up", "Apply every pending migration", true), migrateSub("status", "Show applied and pending migrations", false))
	return cmd
}

func migrateSub(use, short string, apply bool) *cobra.Command {
	s := &settings{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := s.validate()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			g, err := db.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
			if err != nil {
				return err
			}
			defer db.Close(g)
			if apply {
				if err := db.Migrate(ctx, g, app.MigrationSets()...); err != nil {
					return err
				}
			}
			st, err := db.Status(ctx, g, app.MigrationSets()...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			where := db.Redact(cfg.DatabaseURL)
			if where == "" {
				where = db.DefaultSQLitePath(cfg.DataDir)
			}
			fmt.Fprintf(out, "database: %s (%s)\n", where, db.DialectOf(g))
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SET\tVERSION\tFILE\tSTATE")
			pending := 0
			for _, set := range st {
				for _, m := range set.Migrations {
					state := "applied"
					if !m.Applied {
						state = "pending"
						pending++
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", set.Name, m.Version, m.File, state)
				}
			}
			tw.Flush()
			if pending == 0 {
				fmt.Fprintln(out, "schema is up to date")
			} else {
				fmt.Fprintf(out, "%d migration(s) pending: run 'berth migrate up'\n", pending)
			}
			return nil
		},
	}
	s.storeFlags(cmd.Flags())
	return cmd
}
