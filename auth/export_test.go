package auth

// WithFastHashing makes argon2id cheap, for tests that create many users
// with passwords. Only the tests see it.
func WithFastHashing() Option {
	return func(o *options) error {
		o.hashParams = argonParams{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
		return nil
	}
}
