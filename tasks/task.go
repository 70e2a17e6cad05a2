package tasks

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// State is where a task is in its life:
// waiting → running → completed | failed, and canceling → canceled.
type State string

// The states of a task.
const (
	Waiting   State = "waiting"
	Running   State = "running"
	Completed State = "completed"
	Failed    State = "failed"
	Canceling State = "canceling"
	Canceled  State = "canceled"
)

// States lists every state, in life order.
var States = []State{Waiting, Running, Completed, Failed, Canceling, Canceled}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// Finished reports whether s is final: completed, failed or canceled.
func (s State) Finished() bool { return s == Completed || s == Failed || s == Canceled }

// DefaultQueue is the queue of tasks dispatched without one.
const DefaultQueue = "default"

// Task is one unit of long work. The row is the truth about its state; the
// JSON form is what the REST API shows.
type Task struct {
	ID    string `gorm:"column:id;primaryKey" json:"id"`
	Seq   int64  `gorm:"column:seq" json:"-"` // first-come-first-served order
	Name  string `gorm:"column:name" json:"name"`
	State State  `gorm:"column:state" json:"state"`
	// Queue selects the workers that run the task ("default", "builds", …);
	// each queue has its own concurrency on each worker.
	Queue string `gorm:"column:queue" json:"queue"`
	Args  JSON   `gorm:"column:args" json:"args"`
	// ExclusiveResources and SharedResources are copies of the task_resources
	// rows, kept on the task for display.
	ExclusiveResources Strings `gorm:"column:exclusive_resources" json:"exclusive_resources"`
	SharedResources    Strings `gorm:"column:shared_resources" json:"shared_resources"`
	// Worker names the worker that runs or ran the task ("" while waiting).
	Worker   string  `gorm:"column:worker" json:"worker,omitempty"`
	ParentID *string `gorm:"column:parent_id" json:"parent_id"`
	// Idempotent tasks declared themselves safe to run again: when their
	// worker is lost they go back to waiting instead of failing.
	Idempotent bool `gorm:"column:idempotent" json:"idempotent"`
	// Attempts counts the times the task was claimed by a worker.
	Attempts         int             `gorm:"column:attempts" json:"attempts"`
	Error            *TaskError      `gorm:"column:error" json:"error"`
	ProgressReports  ProgressReports `gorm:"column:progress_reports" json:"progress_reports"`
	CreatedResources Strings         `gorm:"column:created_resources" json:"created_resources"`
	Result           JSON            `gorm:"column:result" json:"result,omitempty"`
	CreatedAt        time.Time       `gorm:"column:created_at" json:"created_at"`
	UpdatedAt        time.Time       `gorm:"column:updated_at" json:"updated_at"`
	StartedAt        *time.Time      `gorm:"column:started_at" json:"started_at"`
	FinishedAt       *time.Time      `gorm:"column:finished_at" json:"finished_at"`
}

// TableName tells gorm where tasks live.
func (Task) TableName() string { return "tasks" }

// AfterFind makes times read from PostgreSQL UTC like those from SQLite.
func (t *Task) AfterFind(*gorm.DB) error {
	t.CreatedAt = t.CreatedAt.UTC()
	t.UpdatedAt = t.UpdatedAt.UTC()
	t.StartedAt = utcPtr(t.StartedAt)
	t.FinishedAt = utcPtr(t.FinishedAt)
	return nil
}

// Resources returns every resource of the task, exclusive ones first.
func (t *Task) Resources() []string {
	out := make([]string, 0, len(t.ExclusiveResources)+len(t.SharedResources))
	out = append(out, t.ExclusiveResources...)
	return append(out, t.SharedResources...)
}

// DecodeArgs unmarshals the task's arguments into v.
func (t *Task) DecodeArgs(v any) error {
	if len(t.Args) == 0 {
		return nil
	}
	if err := json.Unmarshal(t.Args, v); err != nil {
		return fmt.Errorf("task %s (%s): decode args: %w", t.ID, t.Name, err)
	}
	return nil
}

// TaskError says why a task failed.
type TaskError struct {
	Description string `json:"description"`
	Traceback   string `json:"traceback,omitempty"`
}

// Error makes a TaskError an error.
func (e *TaskError) Error() string { return e.Description }

// Value stores the error as JSON.
func (e TaskError) Value() (driver.Value, error) { return marshalValue(e) }

// Scan reads the error from its JSON column.
func (e *TaskError) Scan(src any) error { return scanJSON(src, e) }

// Progress report states.
const (
	ProgressWaiting   = "waiting"
	ProgressRunning   = "running"
	ProgressCompleted = "completed"
	ProgressFailed    = "failed"
	ProgressCanceled  = "canceled"
	ProgressSkipped   = "skipped"
)

// ProgressReport is one line of a task's progress, as Pulp shows it.
type ProgressReport struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	State   string `json:"state"`
	Total   *int64 `json:"total"`
	Done    int64  `json:"done"`
	Suffix  string `json:"suffix,omitempty"`
}

// ProgressReports is the JSON list of a task's progress reports.
type ProgressReports []ProgressReport

// Value stores the reports as a JSON list (never null).
func (p ProgressReports) Value() (driver.Value, error) {
	if p == nil {
		return "[]", nil
	}
	return marshalValue([]ProgressReport(p))
}

// Scan reads the reports from their JSON column.
func (p *ProgressReports) Scan(src any) error { return scanJSON(src, (*[]ProgressReport)(p)) }

// MarshalJSON writes an empty list rather than null.
func (p ProgressReports) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]ProgressReport(p))
}

// Strings is a JSON list of strings in one column.
type Strings []string

// Value stores the list as JSON (never null).
func (s Strings) Value() (driver.Value, error) {
	if s == nil {
		return "[]", nil
	}
	return marshalValue([]string(s))
}

// Scan reads the list from its JSON column.
func (s *Strings) Scan(src any) error { return scanJSON(src, (*[]string)(s)) }

// MarshalJSON writes an empty list rather than null.
func (s Strings) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]string(s))
}

// JSON is a raw JSON document in a JSONB (PostgreSQL) or TEXT (SQLite)
// column; nil is SQL NULL and JSON null.
type JSON json.RawMessage

// Value stores the document as text, or NULL.
func (j JSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return nil, nil
	}
	return string(j), nil
}

// Scan reads the document; NULL leaves it nil.
func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		*j = bytes.Clone(v)
	case string:
		*j = JSON(v)
	default:
		return fmt.Errorf("scan JSON: unsupported type %T", src)
	}
	return nil
}

// MarshalJSON writes the document as is, or null.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps a copy of the document.
func (j *JSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = nil
		return nil
	}
	*j = bytes.Clone(b)
	return nil
}

// WorkerInfo is a worker's row: who it is, what it serves, whether it is
// alive. The REST API lists them.
type WorkerInfo struct {
	Name string `gorm:"column:name;primaryKey" json:"name"`
	// Queues maps each queue the worker consumes to its concurrency.
	Queues        QueueConcurrency `gorm:"column:queues" json:"queues"`
	Online        bool             `gorm:"column:online" json:"online"`
	StartedAt     time.Time        `gorm:"column:started_at" json:"started_at"`
	LastHeartbeat time.Time        `gorm:"column:last_heartbeat" json:"last_heartbeat"`
	StoppedAt     *time.Time       `gorm:"column:stopped_at" json:"stopped_at"`
}

// TableName tells gorm where workers live.
func (WorkerInfo) TableName() string { return "workers" }

// AfterFind makes times read from PostgreSQL UTC like those from SQLite.
func (w *WorkerInfo) AfterFind(*gorm.DB) error {
	w.StartedAt = w.StartedAt.UTC()
	w.LastHeartbeat = w.LastHeartbeat.UTC()
	w.StoppedAt = utcPtr(w.StoppedAt)
	return nil
}

// QueueConcurrency maps queue names to how many tasks of each may run at once.
type QueueConcurrency map[string]int

// Value stores the map as a JSON object.
func (q QueueConcurrency) Value() (driver.Value, error) {
	if q == nil {
		return "{}", nil
	}
	return marshalValue(map[string]int(q))
}

// Scan reads the map from its JSON column.
func (q *QueueConcurrency) Scan(src any) error { return scanJSON(src, (*map[string]int)(q)) }

func marshalValue(v any) (driver.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func scanJSON(src any, dst any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("scan JSON column: unsupported type %T", src)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("scan JSON column: %w", err)
	}
	return nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// now is the current time as the databases keep it: UTC, microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
