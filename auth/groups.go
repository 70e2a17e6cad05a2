package auth

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/berth-dev/berth/core"
)

// Group is a named set of users. Roles granted to a group apply to each of
// its members for as long as they are members.
type Group struct {
	ID        string    `gorm:"primaryKey" json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"pulp_created"`
	UpdatedAt time.Time `json:"pulp_last_updated"`
}

// TableName is the groups table.
func (Group) TableName() string { return "auth_groups" }

// groupMember is one membership row.
type groupMember struct {
	GroupID   string `gorm:"primaryKey"`
	UserID    string `gorm:"primaryKey"`
	CreatedAt time.Time
}

func (groupMember) TableName() string { return "auth_group_members" }

var (
	groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._:@+-]{0,149}$`)
	groupCols   = core.Columns{"name": "name", "id": "id", "pulp_created": "created_at"}
)

func validateGroupName(name string) error {
	if !groupNameRE.MatchString(name) {
		return core.Invalid("name", "must be 1-150 characters: letters, digits, spaces and . _ : @ + -, starting with a letter or digit")
	}
	return nil
}

// CreateGroup adds a group. A taken name (in any letter case) is ErrConflict.
func (s *Service) CreateGroup(ctx context.Context, name string) (*Group, error) {
	if err := validateGroupName(name); err != nil {
		return nil, err
	}
	g := &Group{ID: newID(), Name: name}
	if err := s.store.insertGroup(ctx, g); err != nil {
		if errors.Is(err, core.ErrConflict) {
			return nil, core.Conflict("group %q already exists", name)
		}
		return nil, err
	}
	s.log.InfoContext(ctx, "group created", "group", g.Name, "group_id", g.ID)
	return g, nil
}

// Group returns the group with the given ID.
func (s *Service) Group(ctx context.Context, id string) (*Group, error) {
	return s.store.groupByID(ctx, id)
}

// GroupByName returns the group with the given name (any letter case).
func (s *Service) GroupByName(ctx context.Context, name string) (*Group, error) {
	return s.store.groupByName(ctx, name)
}

// ListGroups returns a page of groups (filters and ordering: name, id).
func (s *Service) ListGroups(ctx context.Context, q core.ListQuery) ([]Group, int64, error) {
	return s.store.listGroups(ctx, q)
}

// RenameGroup changes a group's name; its roles and members stay.
func (s *Service) RenameGroup(ctx context.Context, id, name string) (*Group, error) {
	if err := validateGroupName(name); err != nil {
		return nil, err
	}
	g, err := s.store.renameGroup(ctx, id, name)
	if errors.Is(err, core.ErrConflict) {
		return nil, core.Conflict("group %q already exists", name)
	}
	return g, err
}

// DeleteGroup removes a group, its memberships and its role bindings.
func (s *Service) DeleteGroup(ctx context.Context, id string) error {
	if err := s.store.deleteGroup(ctx, id); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "group deleted", "group_id", id)
	return nil
}

// AddGroupMember puts a user in a group; it is a no-op if already there.
func (s *Service) AddGroupMember(ctx context.Context, groupID, userID string) error {
	if err := s.store.addMember(ctx, groupID, userID); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "group member added", "group_id", groupID, "user_id", userID)
	return nil
}

// RemoveGroupMember takes a user out of a group. The group's roles stop
// applying to the user at once, in every process (see Authorizer).
func (s *Service) RemoveGroupMember(ctx context.Context, groupID, userID string) error {
	if err := s.store.removeMember(ctx, groupID, userID); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "group member removed", "group_id", groupID, "user_id", userID)
	return nil
}

// GroupMembers returns a page of a group's users (filters as ListUsers).
func (s *Service) GroupMembers(ctx context.Context, groupID string, q core.ListQuery) ([]User, int64, error) {
	if _, err := s.store.groupByID(ctx, groupID); err != nil {
		return nil, 0, err
	}
	return s.store.groupMembers(ctx, groupID, q)
}

// UserGroups lists the groups a user belongs to.
func (s *Service) UserGroups(ctx context.Context, userID string) ([]Group, error) {
	return s.store.groupsOfUser(ctx, userID)
}
