package auth

import (
	"context"
	"errors"
	"time"

	"github.com/berth-dev/berth/core"
)

// binding is one row of auth_role_bindings.
type binding struct {
	SubjectKind SubjectKind `gorm:"primaryKey"`
	Subject     string      `gorm:"primaryKey"`
	Role        Role        `gorm:"primaryKey"`
	Object      string      `gorm:"primaryKey"`
	Permanent   bool
	CreatedAt   time.Time
}

func (binding) TableName() string { return "auth_role_bindings" }

// addBinding stores b; an existing binding stays (and becomes permanent if b is).
func (s *store) addBinding(ctx context.Context, b *binding) error {
	return s.tx(ctx, func(tx *store) error {
		var cur binding
		err := take(tx.q(ctx), &cur, "role binding", string(b.Role), "subject_kind = ? AND subject = ? AND role = ? AND object = ?",
			b.SubjectKind, b.Subject, b.Role, b.Object)
		switch {
		case err == nil:
			if !b.Permanent || cur.Permanent {
				return nil
			}
			err = tx.q(ctx).Model(&binding{}).Where("subject_kind = ? AND subject = ? AND role = ? AND object = ?",
				b.SubjectKind, b.Subject, b.Role, b.Object).Update("permanent", true).Error
		case errors.Is(err, core.ErrNotFound):
			err = tx.q(ctx).Create(b).Error
		}
		if err != nil {
			return core.Translate(err)
		}
		return tx.bumpPolicy(ctx)
	})
}

// removeBinding deletes one binding; a permanent one is ErrPermanentRole.
func (s *store) removeBinding(ctx context.Context, kind SubjectKind, subject string, role Role, object string) error {
	return s.tx(ctx, func(tx *store) error {
		var cur binding
		where := "subject_kind = ? AND subject = ? AND role = ? AND object = ?"
		if err := take(tx.q(ctx), &cur, "role binding", string(role), where, kind, subject, role, object); err != nil {
			return err
		}
		if cur.Permanent {
			return ErrPermanentRole
		}
		if err := tx.q(ctx).Where(where, kind, subject, role, object).Delete(&binding{}).Error; err != nil {
			return core.Translate(err)
		}
		return tx.bumpPolicy(ctx)
	})
}

// bindingsOn lists the bindings on object with their subjects' names.
func (s *store) bindingsOn(ctx context.Context, object string) ([]RoleBinding, error) {
	var rows []struct {
		SubjectKind SubjectKind
		Subject     string
		Role        Role
		Object      string
		Permanent   bool
		CreatedAt   time.Time
		Name        string
	}
	err := s.q(ctx).Table("auth_role_bindings b").
		Select("b.subject_kind, b.subject, b.role, b.object, b.permanent, b.created_at, COALESCE(u.username, g.name, '') AS name").
		Joins("LEFT JOIN auth_users u ON b.subject_kind = 'user' AND u.id = b.subject").
		Joins("LEFT JOIN auth_groups g ON b.subject_kind = 'group' AND g.id = b.subject").
		Where("b.object = ?", object).
		Order("b.role, b.subject_kind, name").Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	out := make([]RoleBinding, len(rows))
	for i, r := range rows {
		out[i] = RoleBinding{Role: r.Role, Subject: Subject{Kind: r.SubjectKind, ID: r.Subject}, SubjectName: r.Name,
			Object: r.Object, Permanent: r.Permanent, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// deleteObjectBindings removes every binding on object, permanent ones too.
func (s *store) deleteObjectBindings(ctx context.Context, object string) error {
	return s.tx(ctx, func(tx *store) error {
		if err := tx.q(ctx).Where("object = ?", object).Delete(&binding{}).Error; err != nil {
			return core.Translate(err)
		}
		return tx.bumpPolicy(ctx)
	})
}

// loadPolicy reads the whole policy. The version is read first: the rows
// read after it are at least that new, so a snapshot is never older than
// its version says (at worst it is reloaded once more than needed).
// Bindings, memberships and superuser flags of inactive users are left out.
func (s *store) loadPolicy(ctx context.Context) (*policySnapshot, error) {
	v, err := s.policyVersion(ctx)
	if err != nil {
		return nil, err
	}
	snap := &policySnapshot{version: v}
	var rows []struct {
		SubjectKind SubjectKind
		Subject     string
		Role        string
		Object      string
	}
	err = s.q(ctx).Table("auth_role_bindings b").Select("b.subject_kind, b.subject, b.role, b.object").
		Joins("LEFT JOIN auth_users u ON b.subject_kind = 'user' AND u.id = b.subject").
		Where("b.subject_kind = 'group' OR u.is_active = ?", true).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		snap.bindings = append(snap.bindings, bindingRule{Subject: subjectKey(r.SubjectKind, r.Subject), Role: r.Role, Object: r.Object})
	}
	err = s.q(ctx).Table("auth_group_members m").Select("m.user_id, m.group_id").
		Joins("JOIN auth_users u ON u.id = m.user_id").Where("u.is_active = ?", true).Scan(&snap.members).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	err = s.q(ctx).Model(&User{}).Where("is_superuser = ? AND is_active = ?", true, true).Pluck("id", &snap.superusers).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	return snap, nil
}
