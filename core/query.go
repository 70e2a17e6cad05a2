package core

import (
	"context"
	"strings"

	"gorm.io/gorm"
)

// ListQuery selects a page of a list: filters, ordering and limit/offset, as
// the API's query string gives them (Pulp's shapes: name, name__contains,
// ordering=-pulp_created, limit, offset).
type ListQuery struct {
	Limit    int
	Offset   int
	Ordering []string
	Filters  []Filter
}

// Filter is one condition: Field is the API name, Op one of eq, contains,
// icontains, in, gt, gte, lt, lte, isnull.
type Filter struct {
	Field string
	Op    string
	Value any
}

// Columns maps the API field names a list may filter and order by to SQL columns.
type Columns map[string]string

// DefaultLimit and MaxLimit bound a page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Apply validates q against cols and adds its filters to g. It returns the
// filtered query (for counting) and the paged, ordered one.
func (q ListQuery) Apply(g *gorm.DB, cols Columns, defaultOrder string) (filtered, paged *gorm.DB, err error) {
	verr := &ValidationError{}
	for _, f := range q.Filters {
		col, ok := cols[f.Field]
		if !ok {
			verr.Add(f.Field, "unknown filter field")
			continue
		}
		switch f.Op {
		case "", "eq":
			g = g.Where(col+" = ?", f.Value)
		case "contains":
			g = g.Where(col+" LIKE ? ESCAPE '\\'", "%"+escapeLike(toString(f.Value))+"%")
		case "icontains":
			g = g.Where("LOWER("+col+") LIKE ? ESCAPE '\\'", "%"+escapeLike(strings.ToLower(toString(f.Value)))+"%")
		case "startswith":
			g = g.Where(col+" LIKE ? ESCAPE '\\'", escapeLike(toString(f.Value))+"%")
		case "in":
			g = g.Where(col+" IN ?", f.Value)
		case "gt":
			g = g.Where(col+" > ?", f.Value)
		case "gte":
			g = g.Where(col+" >= ?", f.Value)
		case "lt":
			g = g.Where(col+" < ?", f.Value)
		case "lte":
			g = g.Where(col+" <= ?", f.Value)
		case "isnull":
			if b, _ := f.Value.(bool); b {
				g = g.Where(col + " IS NULL")
			} else {
				g = g.Where(col + " IS NOT NULL")
			}
		default:
			verr.Add(f.Field+"__"+f.Op, "unknown filter operator %q", f.Op)
		}
	}
	order := make([]string, 0, len(q.Ordering))
	for _, o := range q.Ordering {
		desc := strings.HasPrefix(o, "-")
		col, ok := cols[strings.TrimPrefix(o, "-")]
		if !ok {
			verr.Add("ordering", "cannot order by %q", o)
			continue
		}
		if desc {
			col += " DESC"
		}
		order = append(order, col)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		verr.Add("limit", "must be between 1 and %d", MaxLimit)
	}
	if q.Offset < 0 {
		verr.Add("offset", "must not be negative")
	}
	if err := verr.Err(); err != nil {
		return nil, nil, err
	}
	if len(order) == 0 {
		order = append(order, defaultOrder)
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	filtered = g
	paged = g.Session(&gorm.Session{})
	for _, o := range order {
		paged = paged.Order(o)
	}
	paged = paged.Limit(limit).Offset(q.Offset)
	return filtered, paged, nil
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// list runs q over model's table into dst and counts all matching rows.
func list[T any](ctx context.Context, g *gorm.DB, q ListQuery, cols Columns, defaultOrder string, scope func(*gorm.DB) *gorm.DB) ([]T, int64, error) {
	var zero T
	base := g.WithContext(ctx).Model(&zero)
	if scope != nil {
		base = scope(base)
	}
	filtered, paged, err := q.Apply(base, cols, defaultOrder)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, Translate(err)
	}
	var out []T
	if err := paged.Find(&out).Error; err != nil {
		return nil, 0, Translate(err)
	}
	return out, total, nil
}
