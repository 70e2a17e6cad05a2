package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newLoginCmd() *cobra.Command {
	var o clientOptions
	var user string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "login URL -u USER",
		Short: "Log in to a Berth server and store an API token for the other commands",
		Long: `login asks for your password (or reads it from standard input with
--password-stdin), creates a personal API token on the server and stores the
server's URL and that token — never the password — in
~/.config/berth/config.json (readable by you only). The other client commands
use it.`,
		Example: `  berth login https://berth.example.com -u alice
  echo "$PASSWORD" | berth login http://localhost:5001 -u admin --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := strings.TrimRight(args[0], "/")
			if u, err := url.Parse(server); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return usageError{fmt.Errorf("server %q: want http(s)://host[:port]", args[0])}
			}
			if user == "" {
				return usageError{fmt.Errorf("give the user name with -u USER")}
			}
			pw, err := password(cmd, stdin)
			if err != nil {
				return err
			}
			token, err := createAPIToken(cmd.Context(), server, user, pw)
			if err != nil {
				return err
			}
			p, err := o.saveConfig(clientConfig{Server: server, Username: user, Token: token})
			if err != nil {
				return fmt.Errorf("store the token: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (token stored in %s)\n", server, user, p)
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

// password reads the password: the first line of standard input, or typed
// at the terminal without echo.
func password(cmd *cobra.Command, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", usageError{fmt.Errorf("no password on standard input")}
		}
		return pw, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", usageError{fmt.Errorf("no terminal to ask for the password: use --password-stdin")}
	}
	defer tty.Close()
	fmt.Fprint(tty, "Password: ")
	pw, err := readNoEcho(tty)
	fmt.Fprintln(tty)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", usageError{fmt.Errorf("empty password")}
	}
	return pw, nil
}

// readNoEcho reads a line from a terminal with echo turned off.
func readNoEcho(tty *os.File) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("not a terminal: use --password-stdin")
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	line, err := bufio.NewReader(tty).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// createAPIToken logs in with the password and creates a personal API
// token named after this machine.
func createAPIToken(ctx context.Context, server, user, pw string) (string, error) {
	host, _ := os.Hostname()
	body, _ := json.Marshal(map[string]any{"name": "berth CLI on " + orDash(host), "kind": "api"})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/api/v1/tokens/", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(user, pw)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach %s: %w", server, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return "", fmt.Errorf("login to %s failed: wrong user name or password", server)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", &apiError{resp.StatusCode, http.MethodPost, "/api/v1/tokens/", raw}
	}
	var t struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("%s did not answer with a token: is it a Berth server?", server)
	}
	return t.Token, nil
}
