package core

import "context"

// RepositoryHook is implemented by plugins that keep objects belonging to
// one repository alone (the container plugin's distribution at the image
// name, a remote only that repository uses): they go with it.
type RepositoryHook interface {
	// RepositoryDeleting runs in the transaction that deletes repo, after
	// repo's row is locked and before the core deletes it. An error undoes
	// the whole deletion.
	RepositoryDeleting(ctx context.Context, tx *Store, repo *Repository) error
}

// DeleteRepositoryWith deletes a repository with its versions, as
// DeleteRepository does, after letting each hook delete what belongs to it
// alone, in one transaction. Its content stays until orphan cleanup finds
// it unused.
func (s *Store) DeleteRepositoryWith(ctx context.Context, id string, hooks ...RepositoryHook) error {
	return s.Tx(ctx, func(tx *Store) error {
		repo, err := tx.lockRepository(ctx, id)
		if err != nil {
			return err
		}
		for _, h := range hooks {
			if err := h.RepositoryDeleting(ctx, tx, repo); err != nil {
				return err
			}
		}
		return tx.DeleteRepository(ctx, id)
	})
}

// RepositoriesUsingRemote counts the repositories whose default remote is
// remoteID.
func (s *Store) RepositoriesUsingRemote(ctx context.Context, remoteID string) (int64, error) {
	var n int64
	err := s.DB(ctx).Model(&Repository{}).Where("remote_id = ?", remoteID).Count(&n).Error
	return n, Translate(err)
}
