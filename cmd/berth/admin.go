package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/app"
	"github.com/berth-dev/berth/auth"
)

func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator commands: users and passwords",
		Long: `admin changes Berth's records directly in the database, for operators
who have its configuration (the same BERTH_* settings as serve).`,
	}
	cmd.AddCommand(newCreateUserCmd(), newSetPasswordCmd())
	return cmd
}

// readPassword takes the password from stdin when asked to, or makes a
// random one (returned so it can be printed once).
func readPassword(in io.Reader, fromStdin bool) (pw string, generated bool, err error) {
	if fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", false, err
		}
		pw = strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", false, usageError{fmt.Errorf("no password on standard input")}
		}
		return pw, false, nil
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	return base64.RawURLEncoding.EncodeToString(b), true, nil
}

func openForAdmin(cmd *cobra.Command, s *settings) (*app.App, error) {
	cfg, err := s.validate()
	if err != nil {
		return nil, err
	}
	return app.Open(cmd.Context(), cfg, app.NewLogger(cfg), version, true)
}

func newCreateUserCmd() *cobra.Command {
	s := &settings{}
	var superuser, stdin bool
	cmd := &cobra.Command{
		Use:   "create-user NAME",
		Short: "Create a user (prints a generated password unless --password-stdin)",
		Example: `  berth admin create-user alice
  echo 's3cret-passphrase' | berth admin create-user bob --superuser --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := readPassword(cmd.InOrStdin(), stdin)
			if err != nil {
				return err
			}
			a, err := openForAdmin(cmd, s)
			if err != nil {
				return err
			}
			defer a.Close()
			u, err := a.Auth.CreateUser(cmd.Context(), auth.UserInput{Username: args[0], Password: pw, Superuser: superuser})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created user %q (superuser: %v)\n", u.Username, superuser)
			if generated {
				fmt.Fprintf(cmd.OutOrStdout(), "password: %s\n", pw)
			}
			return nil
		},
	}
	s.storeFlags(cmd.Flags())
	cmd.Flags().StringVar(&s.cfg.SecretKey, "secret-key", s.env.String("SECRET_KEY", ""), "server secret key (BERTH_SECRET_KEY); read from the data directory if unset")
	cmd.Flags().BoolVar(&superuser, "superuser", false, "make the user a superuser")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func newSetPasswordCmd() *cobra.Command {
	s := &settings{}
	var stdin bool
	cmd := &cobra.Command{
		Use:     "set-password NAME",
		Short:   "Set a user's password (prints a generated one unless --password-stdin)",
		Example: `  echo 'new-passphrase' | berth admin set-password alice --password-stdin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := readPassword(cmd.InOrStdin(), stdin)
			if err != nil {
				return err
			}
			a, err := openForAdmin(cmd, s)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Auth.SetPassword(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %q changed\n", args[0])
			if generated {
				fmt.Fprintf(cmd.OutOrStdout(), "password: %s\n", pw)
			}
			return nil
		},
	}
	s.storeFlags(cmd.Flags())
	cmd.Flags().StringVar(&s.cfg.SecretKey, "secret-key", s.env.String("SECRET_KEY", ""), "server secret key (BERTH_SECRET_KEY); read from the data directory if unset")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}
