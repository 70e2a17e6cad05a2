package testdb

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
)

// Statement is one SQL statement a *gorm.DB ran, with its arguments.
type Statement struct {
	SQL  string
	Vars []any
}

// Record runs fn and returns every statement g and the sessions and
// transactions made from it ran meanwhile, in order.
func Record(t testing.TB, g *gorm.DB, fn func()) []Statement {
	t.Helper()
	var (
		mu  sync.Mutex
		out []Statement
	)
	name := "testdb:record:" + randomName()
	record := func(tx *gorm.DB) {
		if tx.Statement == nil || tx.Statement.SQL.Len() == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		out = append(out, Statement{SQL: tx.Statement.SQL.String(), Vars: append([]any(nil), tx.Statement.Vars...)})
	}
	cb := g.Callback()
	type hook struct {
		after  string
		add    func(string, func(*gorm.DB)) error
		remove func(string) error
	}
	hooks := []hook{
		{"gorm:query", func(n string, f func(*gorm.DB)) error { return cb.Query().After("gorm:query").Register(n, f) }, cb.Query().Remove},
		{"gorm:row", func(n string, f func(*gorm.DB)) error { return cb.Row().After("gorm:row").Register(n, f) }, cb.Row().Remove},
		{"gorm:raw", func(n string, f func(*gorm.DB)) error { return cb.Raw().After("gorm:raw").Register(n, f) }, cb.Raw().Remove},
		{"gorm:create", func(n string, f func(*gorm.DB)) error { return cb.Create().After("gorm:create").Register(n, f) }, cb.Create().Remove},
		{"gorm:update", func(n string, f func(*gorm.DB)) error { return cb.Update().After("gorm:update").Register(n, f) }, cb.Update().Remove},
		{"gorm:delete", func(n string, f func(*gorm.DB)) error { return cb.Delete().After("gorm:delete").Register(n, f) }, cb.Delete().Remove},
	}
	for _, h := range hooks {
		if err := h.add(name, record); err != nil {
			t.Fatalf("record statements after %s: %v", h.after, err)
		}
	}
	defer func() {
		for _, h := range hooks {
			_ = h.remove(name)
		}
	}()
	fn()
	mu.Lock()
	defer mu.Unlock()
	return out
}

// SQLitePlan returns the details of SQLite's query plan for st, one line
// per step ("SEARCH rc USING COVERING INDEX … (repository_id=? AND …)").
func SQLitePlan(t testing.TB, g *gorm.DB, st Statement) []string {
	t.Helper()
	rows, err := g.Raw("EXPLAIN QUERY PLAN "+st.SQL, st.Vars...).Rows()
	if err != nil {
		t.Fatalf("explain %s: %v", st.SQL, err)
	}
	defer rows.Close()
	var details []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatalf("explain %s: %v", st.SQL, err)
		}
		details = append(details, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("explain %s: %v", st.SQL, err)
	}
	return details
}

// WholeTableReads returns the steps of st's SQLite plan that read every
// row of table, or every row of table for one value of prefix (the
// leading column, such as a repository ID): a SCAN of the table, or a
// SEARCH whose only constraint is prefix. A statement that finds its rows
// through a longer index prefix or a rowid has none.
func WholeTableReads(t testing.TB, g *gorm.DB, st Statement, table, prefix string) []string {
	t.Helper()
	if !regexp.MustCompile(`(?i)\b` + table + `\b`).MatchString(st.SQL) {
		return nil
	}
	// The names the plan may use for table: itself and its aliases.
	names := map[string]bool{table: true}
	for _, m := range regexp.MustCompile(`(?i)\b`+table+`\s+(?:AS\s+)?(\w+)`).FindAllStringSubmatch(st.SQL, -1) {
		if kw := strings.ToUpper(m[1]); kw != "WHERE" && kw != "SET" && kw != "ON" && kw != "JOIN" && kw != "LEFT" && kw != "INNER" && kw != "USING" {
			names[m[1]] = true
		}
	}
	onlyPrefix := fmt.Sprintf("(%s=?)", prefix)
	var bad []string
	for _, d := range SQLitePlan(t, g, st) {
		f := strings.Fields(d)
		if len(f) < 2 || !names[f[1]] {
			continue
		}
		if f[0] == "SCAN" || (f[0] == "SEARCH" && strings.HasSuffix(d, onlyPrefix)) {
			bad = append(bad, d)
		}
	}
	return bad
}
