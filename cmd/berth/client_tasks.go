package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// taskView is what the client reads of a task.
type taskView struct {
	Href       string     `json:"pulp_href"`
	Name       string     `json:"name"`
	State      string     `json:"state"`
	Created    time.Time  `json:"pulp_created"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      *struct {
		Description string `json:"description"`
	} `json:"error"`
	Progress []struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		State   string `json:"state"`
		Total   *int64 `json:"total"`
		Done    int64  `json:"done"`
		Suffix  string `json:"suffix"`
	} `json:"progress_reports"`
	CreatedResources []string `json:"created_resources"`
}

func (t *taskView) finished() bool {
	return t.State == "completed" || t.State == "failed" || t.State == "canceled"
}

// taskPath turns a task href or ID into its API path.
func taskPath(ref string) string {
	if strings.Contains(ref, "/tasks/") {
		if i := strings.Index(ref, "/pulp/api/v3/"); i >= 0 {
			ref = ref[i:]
		}
		return strings.TrimSuffix(ref, "/") + "/"
	}
	return "/pulp/api/v3/tasks/" + ref + "/"
}

func newTaskCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{Use: "task", Short: "Show, wait for and cancel tasks"}
	o.flags(cmd)
	show := &cobra.Command{
		Use: "show TASK", Short: "Show a task (href or ID)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var t taskView
			raw, err := c.call(cmd.Context(), http.MethodGet, taskPath(args[0]), nil, &t)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			return printTask(c, &t)
		},
	}
	var timeout time.Duration
	wait := &cobra.Command{
		Use:   "wait TASK",
		Short: "Wait until a task ends; exit non-zero if it failed or was canceled",
		Long: `wait polls the task until it is finished, drawing a progress bar on standard
error when that is a terminal. It exits 0 when the task completed, 1 when it
failed or was canceled (or the timeout passed).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			return waitTask(cmd, c, args[0], timeout)
		},
	}
	wait.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: wait for ever)")
	cancel := &cobra.Command{
		Use: "cancel TASK", Short: "Cancel a task", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var t taskView
			raw, err := c.call(cmd.Context(), http.MethodPatch, taskPath(args[0]), map[string]string{"state": "canceled"}, &t)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			fmt.Fprintf(c.out, "%s: %s\n", t.Href, t.State)
			return nil
		},
	}
	cmd.AddCommand(show, wait, cancel)
	return cmd
}

func printTask(c *apiClient, t *taskView) error {
	kv := [][2]string{{"task", t.Href}, {"name", t.Name}, {"state", t.State}, {"created", ago(t.Created)}}
	if t.StartedAt != nil {
		kv = append(kv, [2]string{"started", ago(*t.StartedAt)})
	}
	if t.FinishedAt != nil {
		kv = append(kv, [2]string{"finished", ago(*t.FinishedAt)})
	}
	for _, p := range t.Progress {
		n := fmt.Sprint(p.Done)
		if p.Total != nil {
			n += "/" + fmt.Sprint(*p.Total)
		}
		kv = append(kv, [2]string{"progress", fmt.Sprintf("%s (%s) %s", p.Message, p.State, n)})
	}
	for _, r := range t.CreatedResources {
		kv = append(kv, [2]string{"created resource", r})
	}
	if t.Error != nil {
		kv = append(kv, [2]string{"error", t.Error.Description})
	}
	return c.fields(kv)
}

// waitTask polls a task until it ends. With a terminal on standard error
// it draws the task's progress there. A task that failed or was canceled
// is an error (exit status 1).
func waitTask(cmd *cobra.Command, c *apiClient, ref string, timeout time.Duration) error {
	ctx := cmd.Context()
	path := taskPath(ref)
	var bar io.Writer
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && isTerminal(f) {
		bar = f
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	interval := 100 * time.Millisecond
	for {
		var t taskView
		raw, err := c.call(ctx, http.MethodGet, path, nil, &t)
		if err != nil {
			return err
		}
		if bar != nil {
			drawProgress(bar, &t)
		}
		if t.finished() {
			if bar != nil {
				fmt.Fprintln(bar)
			}
			if c.json {
				if err := c.printJSON(raw); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(c.out, "%s %s: %s\n", t.Name, t.Href, t.State)
			}
			switch t.State {
			case "failed":
				desc := "no reason given"
				if t.Error != nil {
					desc = t.Error.Description
				}
				return fmt.Errorf("task %s failed: %s", t.Href, desc)
			case "canceled":
				return fmt.Errorf("task %s was canceled", t.Href)
			}
			return nil
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return fmt.Errorf("task %s still %s after %s", t.Href, t.State, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(interval*2, 2*time.Second)
	}
}

// drawProgress draws one line: the state, a bar of the last report with a
// total, and its message.
func drawProgress(w io.Writer, t *taskView) {
	const width = 30
	msg, bar := t.State, strings.Repeat(" ", width)
	for _, p := range t.Progress {
		msg = p.Message
		if p.Total != nil && *p.Total > 0 {
			n := int(min(p.Done, *p.Total) * width / *p.Total)
			bar = strings.Repeat("=", n) + strings.Repeat(" ", width-n)
			msg = fmt.Sprintf("%s %d/%d", p.Message, p.Done, *p.Total)
		} else if p.State == "completed" {
			bar = strings.Repeat("=", width)
		}
	}
	if t.State == "completed" {
		bar = strings.Repeat("=", width)
	}
	if len(msg) > 60 {
		msg = msg[:57] + "..."
	}
	fmt.Fprintf(w, "\r[%s] %-9s %-60s", bar, t.State, msg)
}
