package tasks

import (
	"slices"
	"sync"
)

// Reporter is how a running handler tells the world how far it got and what
// it created. It only updates memory; the worker writes the reports to the
// task row at most every progress interval (500 ms by default) and at the
// end, so a handler may report per byte without a database write per call.
// It is safe for concurrent use.
type Reporter struct {
	mu      sync.Mutex
	reports []ProgressReport
	created []string
	dirty   bool
}

func newReporter(created []string) *Reporter {
	return &Reporter{created: slices.Clone(created)}
}

// Progress starts a progress report (state running) and returns the handle
// to update it.
func (r *Reporter) Progress(code, message string) *Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, ProgressReport{Code: code, Message: message, State: ProgressRunning})
	r.dirty = true
	return &Progress{r: r, i: len(r.reports) - 1}
}

// Created records resources (hrefs) the task created, such as a new
// repository version. Duplicates are ignored.
func (r *Reporter) Created(hrefs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range hrefs {
		if h != "" && !slices.Contains(r.created, h) {
			r.created = append(r.created, h)
			r.dirty = true
		}
	}
}

// take returns copies of the reports and created resources, and whether
// they changed since the last take.
func (r *Reporter) take() (ProgressReports, Strings, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := r.dirty
	r.dirty = false
	reports := make(ProgressReports, len(r.reports))
	for i, p := range r.reports {
		if p.Total != nil {
			n := *p.Total
			p.Total = &n
		}
		reports[i] = p
	}
	return reports, Strings(slices.Clone(r.created)), changed
}

// end gives the reports still running (or waiting) the final state.
func (r *Reporter) end(state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.reports {
		if s := r.reports[i].State; s == ProgressRunning || s == ProgressWaiting {
			r.reports[i].State = state
			r.dirty = true
		}
	}
}

// Progress is one progress report of a running task.
type Progress struct {
	r *Reporter
	i int
}

func (p *Progress) update(f func(*ProgressReport)) *Progress {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	f(&p.r.reports[p.i])
	p.r.dirty = true
	return p
}

// SetTotal sets how many units the step has.
func (p *Progress) SetTotal(n int64) *Progress {
	return p.update(func(r *ProgressReport) { r.Total = &n })
}

// Increment adds n done units.
func (p *Progress) Increment(n int64) *Progress {
	return p.update(func(r *ProgressReport) { r.Done += n })
}

// SetDone sets the number of done units.
func (p *Progress) SetDone(n int64) *Progress {
	return p.update(func(r *ProgressReport) { r.Done = n })
}

// SetSuffix sets a short free-form note shown after the counts.
func (p *Progress) SetSuffix(s string) *Progress {
	return p.update(func(r *ProgressReport) { r.Suffix = s })
}

// Done marks the step completed.
func (p *Progress) Done() { p.update(func(r *ProgressReport) { r.State = ProgressCompleted }) }

// Skip marks the step skipped.
func (p *Progress) Skip() { p.update(func(r *ProgressReport) { r.State = ProgressSkipped }) }

// Fail marks the step failed (the task may still go on).
func (p *Progress) Fail() { p.update(func(r *ProgressReport) { r.State = ProgressFailed }) }
