package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth/core"
)

// SubjectKind says whether a role is held by a user or by a group.
type SubjectKind string

const (
	SubjectUser  SubjectKind = "user"
	SubjectGroup SubjectKind = "group"
)

// Subject is a user or a group, by ID.
type Subject struct {
	Kind SubjectKind
	ID   string
}

// UserSubject names a user as a role holder.
func UserSubject(userID string) Subject { return Subject{Kind: SubjectUser, ID: userID} }

// GroupSubject names a group as a role holder.
func GroupSubject(groupID string) Subject { return Subject{Kind: SubjectGroup, ID: groupID} }

func subjectKey(kind SubjectKind, id string) string { return string(kind) + ":" + id }

// RoleBinding says that a subject holds a role on an object.
type RoleBinding struct {
	Role        Role
	Subject     Subject
	SubjectName string // username or group name
	Object      string // NamespaceObject(name), or "*" for a global role
	// Permanent marks a namespace creator's owner role: it cannot be revoked.
	Permanent bool
	CreatedAt time.Time
}

func checkNamespaceName(ns string) error {
	if ns == "" || len(ns) > 255 {
		return core.Invalid("namespace", "must be 1-255 characters")
	}
	return nil
}

// checkSubject verifies that the subject exists.
func (s *Service) checkSubject(ctx context.Context, sub Subject) error {
	switch sub.Kind {
	case SubjectUser:
		_, err := s.store.userByID(ctx, sub.ID)
		return err
	case SubjectGroup:
		_, err := s.store.groupByID(ctx, sub.ID)
		return err
	}
	return core.Invalid("subject", "kind must be user or group, not %q", sub.Kind)
}

// GrantRole gives sub a namespace role (owner, collaborator or consumer) on
// the namespace. Granting a role already held is a no-op.
func (s *Service) GrantRole(ctx context.Context, namespace string, role Role, sub Subject) error {
	return s.grant(ctx, namespace, role, sub, false)
}

// GrantCreator makes a namespace's creator its owner for good: the binding
// is permanent (RevokeRole answers ErrPermanentRole). The container plugin
// calls it when a push or an API call creates a namespace.
func (s *Service) GrantCreator(ctx context.Context, namespace, userID string) error {
	return s.grant(ctx, namespace, RoleOwner, UserSubject(userID), true)
}

func (s *Service) grant(ctx context.Context, namespace string, role Role, sub Subject, permanent bool) error {
	if err := checkNamespaceName(namespace); err != nil {
		return err
	}
	if role == RoleRegistryAdmin || roleActions[role] == nil || role == roleSuperuser {
		return core.Invalid("role", "%q cannot be granted on a namespace: want owner, collaborator or consumer", role)
	}
	if err := s.checkSubject(ctx, sub); err != nil {
		return err
	}
	b := &binding{SubjectKind: sub.Kind, Subject: sub.ID, Role: role, Object: NamespaceObject(namespace), Permanent: permanent}
	if err := s.store.addBinding(ctx, b); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "role granted", "namespace", namespace, "role", role, "subject_kind", sub.Kind, "subject_id", sub.ID, "permanent", permanent)
	return nil
}

// RevokeRole takes a namespace role from sub. It answers ErrNotFound when sub
// does not hold it and ErrPermanentRole for a creator's owner role.
func (s *Service) RevokeRole(ctx context.Context, namespace string, role Role, sub Subject) error {
	if err := checkNamespaceName(namespace); err != nil {
		return err
	}
	err := s.store.removeBinding(ctx, sub.Kind, sub.ID, role, NamespaceObject(namespace))
	if errors.Is(err, ErrPermanentRole) {
		return fmt.Errorf("the %s role of namespace %q's creator cannot be removed: %w", role, namespace, ErrPermanentRole)
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "role revoked", "namespace", namespace, "role", role, "subject_kind", sub.Kind, "subject_id", sub.ID)
	return nil
}

// NamespaceRoleBindings lists who holds which role on the namespace.
func (s *Service) NamespaceRoleBindings(ctx context.Context, namespace string) ([]RoleBinding, error) {
	if err := checkNamespaceName(namespace); err != nil {
		return nil, err
	}
	return s.store.bindingsOn(ctx, NamespaceObject(namespace))
}

// ForgetNamespace removes every binding on a deleted namespace, permanent
// ones included, so that a namespace later created under the same name
// starts clean.
func (s *Service) ForgetNamespace(ctx context.Context, namespace string) error {
	if err := checkNamespaceName(namespace); err != nil {
		return err
	}
	if err := s.store.deleteObjectBindings(ctx, NamespaceObject(namespace)); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "namespace roles removed", "namespace", namespace)
	return nil
}

// GrantGlobalRole gives sub a global role; registry_admin is the only one
// (superusers are a flag on the user).
func (s *Service) GrantGlobalRole(ctx context.Context, role Role, sub Subject) error {
	if role != RoleRegistryAdmin {
		return core.Invalid("role", "%q is not a global role: want registry_admin", role)
	}
	if err := s.checkSubject(ctx, sub); err != nil {
		return err
	}
	if err := s.store.addBinding(ctx, &binding{SubjectKind: sub.Kind, Subject: sub.ID, Role: role, Object: globalObject}); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "global role granted", "role", role, "subject_kind", sub.Kind, "subject_id", sub.ID)
	return nil
}

// RevokeGlobalRole takes a global role from sub.
func (s *Service) RevokeGlobalRole(ctx context.Context, role Role, sub Subject) error {
	if err := s.store.removeBinding(ctx, sub.Kind, sub.ID, role, globalObject); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "global role revoked", "role", role, "subject_kind", sub.Kind, "subject_id", sub.ID)
	return nil
}

// GlobalRoleBindings lists the global role bindings.
func (s *Service) GlobalRoleBindings(ctx context.Context) ([]RoleBinding, error) {
	return s.store.bindingsOn(ctx, globalObject)
}
