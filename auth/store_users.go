package auth

import (
	"context"

	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

func (s *store) insertUser(ctx context.Context, u *User) error {
	return s.tx(ctx, func(tx *store) error {
		if err := tx.q(ctx).Create(u).Error; err != nil {
			return core.Translate(err)
		}
		return tx.bumpPolicy(ctx)
	})
}

func (s *store) userByID(ctx context.Context, id string) (*User, error) {
	var u User
	if err := take(s.q(ctx), &u, "user", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &u, nil
}

// userByName finds a user by username in any letter case (the unique index
// is on lower(username), so at most one matches).
func (s *store) userByName(ctx context.Context, username string) (*User, error) {
	var u User
	if err := take(s.q(ctx), &u, "user", username, "lower(username) = lower(?)", username); err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *store) listUsers(ctx context.Context, q core.ListQuery) ([]User, int64, error) {
	return list[User](ctx, s.db, q, userCols, "username", nil)
}

// saveUser writes every field of u and bumps the policy version (superuser
// and active flags are part of the policy).
func (s *store) saveUser(ctx context.Context, u *User) error {
	return s.tx(ctx, func(tx *store) error {
		res := tx.q(ctx).Model(u).Select("username", "password_hash", "first_name", "last_name", "email",
			"is_superuser", "is_active", "updated_at").Updates(u)
		if res.Error != nil {
			return core.Translate(res.Error)
		}
		if res.RowsAffected == 0 {
			return core.NotFound("user", u.ID)
		}
		return tx.bumpPolicy(ctx)
	})
}

// deleteUser removes the user's role bindings and the user; memberships and
// tokens go with it (ON DELETE CASCADE).
func (s *store) deleteUser(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *store) error {
		if err := tx.q(ctx).Where("subject_kind = ? AND subject = ?", SubjectUser, id).Delete(&binding{}).Error; err != nil {
			return core.Translate(err)
		}
		res := tx.q(ctx).Where("id = ?", id).Delete(&User{})
		if res.Error != nil {
			return core.Translate(res.Error)
		}
		if res.RowsAffected == 0 {
			return core.NotFound("user", id)
		}
		return tx.bumpPolicy(ctx)
	})
}

// requireOtherSuperuser answers ErrLastSuperuser unless an active superuser
// other than id exists. On PostgreSQL it locks those rows, so two
// transactions demoting the last two superusers cannot both pass (one of
// them fails on the deadlock and may retry).
func (s *store) requireOtherSuperuser(ctx context.Context, id string) error {
	g := s.q(ctx).Model(&User{}).Where("is_superuser = ? AND is_active = ? AND id <> ?", true, true, id)
	if s.dialect == db.Postgres {
		g = g.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var ids []string
	if err := g.Pluck("id", &ids).Error; err != nil {
		return core.Translate(err)
	}
	if len(ids) == 0 {
		return ErrLastSuperuser
	}
	return nil
}

func (s *store) anySuperuser(ctx context.Context) (bool, error) {
	var n int64
	err := s.q(ctx).Model(&User{}).Where("is_superuser = ? AND is_active = ?", true, true).Limit(1).Count(&n).Error
	return n > 0, core.Translate(err)
}

// groupsOfUser lists the groups a user belongs to, by name.
func (s *store) groupsOfUser(ctx context.Context, userID string) ([]Group, error) {
	out := []Group{}
	err := s.q(ctx).Model(&Group{}).
		Joins("JOIN auth_group_members m ON m.group_id = auth_groups.id").
		Where("m.user_id = ?", userID).Order("auth_groups.name").Find(&out).Error
	return out, core.Translate(err)
}

// groupsOfUsers maps user IDs to their groups, for list views.
func (s *store) groupsOfUsers(ctx context.Context, userIDs []string) (map[string][]Group, error) {
	out := map[string][]Group{}
	if len(userIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		UserID string
		Group
	}
	err := s.q(ctx).Table("auth_groups").
		Select("m.user_id AS user_id, auth_groups.id, auth_groups.name, auth_groups.created_at, auth_groups.updated_at").
		Joins("JOIN auth_group_members m ON m.group_id = auth_groups.id").
		Where("m.user_id IN ?", userIDs).Order("auth_groups.name").Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], r.Group)
	}
	return out, nil
}
