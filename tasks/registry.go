package tasks

import (
	"context"
	"fmt"
	"regexp"
	"sort"
)

// Handler does the work of one task. ctx is cancelled when the task is
// canceled (its row goes to canceling), when the worker shuts down, or when
// the task was taken away from this worker; a handler returns soon after,
// usually with ctx.Err(). r reports progress and created resources. The
// result, if not nil, is stored as JSON on the task. Returning an error fails
// the task with the error's message; so does a panic.
type Handler func(ctx context.Context, t *Task, r *Reporter) (result any, err error)

// HandlerProvider is implemented by plugins that bring task handlers.
type HandlerProvider interface {
	// TaskHandlers maps task names ("container.sync") to their handlers.
	TaskHandlers() map[string]Handler
}

// Names tells which task names can be dispatched. *Registry implements it.
type Names interface {
	Has(name string) bool
}

// namePattern is what task names look like: dotted lower-case words.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$`)

// Registry maps task names to handlers. Fill it at start-up; it is read-only
// (and safe for concurrent use) afterwards.
type Registry struct {
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{handlers: map[string]Handler{}} }

// Register adds a handler. An invalid or duplicate name, or a nil handler, is
// an error.
func (r *Registry) Register(name string, h Handler) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("task name %q: want dotted lower-case words such as \"container.sync\"", name)
	}
	if h == nil {
		return fmt.Errorf("task %q: nil handler", name)
	}
	if _, dup := r.handlers[name]; dup {
		return fmt.Errorf("task %q: handler already registered", name)
	}
	r.handlers[name] = h
	return nil
}

// RegisterProvider adds every handler of p.
func (r *Registry) RegisterProvider(p HandlerProvider) error {
	hs := p.TaskHandlers()
	names := make([]string, 0, len(hs))
	for n := range hs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := r.Register(n, hs[n]); err != nil {
			return err
		}
	}
	return nil
}

// Has reports whether a handler is registered under name.
func (r *Registry) Has(name string) bool {
	_, ok := r.handlers[name]
	return ok
}

// Handler returns the handler registered under name.
func (r *Registry) Handler(name string) (Handler, bool) {
	h, ok := r.handlers[name]
	return h, ok
}

// Names lists the registered task names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
