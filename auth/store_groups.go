package auth

import (
	"context"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
)

func (s *store) insertGroup(ctx context.Context, g *Group) error {
	return core.Translate(s.q(ctx).Create(g).Error)
}

func (s *store) groupByID(ctx context.Context, id string) (*Group, error) {
	var g Group
	if err := take(s.q(ctx), &g, "group", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &g, nil
}

func (s *store) groupByName(ctx context.Context, name string) (*Group, error) {
	var g Group
	if err := take(s.q(ctx), &g, "group", name, "lower(name) = lower(?)", name); err != nil {
		return nil, err
	}
	return &g, nil
}

func (s *store) listGroups(ctx context.Context, q core.ListQuery) ([]Group, int64, error) {
	return list[Group](ctx, s.db, q, groupCols, "name", nil)
}

func (s *store) renameGroup(ctx context.Context, id, name string) (*Group, error) {
	var out *Group
	err := s.tx(ctx, func(tx *store) error {
		g, err := tx.groupByID(ctx, id)
		if err != nil {
			return err
		}
		g.Name = name
		if err := tx.q(ctx).Model(g).Select("name", "updated_at").Updates(g).Error; err != nil {
			return core.Translate(err)
		}
		out = g
		return nil
	})
	return out, err
}

func (s *store) deleteGroup(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *store) error {
		if err := tx.q(ctx).Where("subject_kind = ? AND subject = ?", SubjectGroup, id).Delete(&binding{}).Error; err != nil {
			return core.Translate(err)
		}
		res := tx.q(ctx).Where("id = ?", id).Delete(&Group{})
		if res.Error != nil {
			return core.Translate(res.Error)
		}
		if res.RowsAffected == 0 {
			return core.NotFound("group", id)
		}
		return tx.bumpPolicy(ctx)
	})
}

func (s *store) addMember(ctx context.Context, groupID, userID string) error {
	return s.tx(ctx, func(tx *store) error {
		if _, err := tx.groupByID(ctx, groupID); err != nil {
			return err
		}
		if _, err := tx.userByID(ctx, userID); err != nil {
			return err
		}
		var n int64
		if err := tx.q(ctx).Model(&groupMember{}).Where("group_id = ? AND user_id = ?", groupID, userID).Count(&n).Error; err != nil {
			return core.Translate(err)
		}
		if n > 0 {
			return nil
		}
		if err := tx.q(ctx).Create(&groupMember{GroupID: groupID, UserID: userID}).Error; err != nil {
			return core.Translate(err)
		}
		return tx.bumpPolicy(ctx)
	})
}

func (s *store) removeMember(ctx context.Context, groupID, userID string) error {
	return s.tx(ctx, func(tx *store) error {
		res := tx.q(ctx).Where("group_id = ? AND user_id = ?", groupID, userID).Delete(&groupMember{})
		if res.Error != nil {
			return core.Translate(res.Error)
		}
		if res.RowsAffected == 0 {
			return core.NotFound("group member", userID)
		}
		return tx.bumpPolicy(ctx)
	})
}

func (s *store) groupMembers(ctx context.Context, groupID string, q core.ListQuery) ([]User, int64, error) {
	return list[User](ctx, s.db, q, userCols, "username", func(g *gorm.DB) *gorm.DB {
		return g.Where("id IN (?)", s.db.Model(&groupMember{}).Select("user_id").Where("group_id = ?", groupID))
	})
}
