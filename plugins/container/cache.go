package container

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"
)

// The read caches. Everything derived from one repository version is
// immutable (a version never changes once made; deleting a version folds its
// changes into the next one so that every remaining version keeps its
// content), so it is cached by (repository ID, version number) and never
// goes stale: tag → manifest, "is manifest/blob D in the version". Manifest
// bytes are immutable by digest. Only "which version does name serve"
// changes; it is cached briefly and invalidated by every version this
// process makes. All caches are bounded LRUs.
//
// Several replicas: each invalidates only its own caches, so another
// replica may serve the previous version of an image for up to the TTL
// after a push. A Redis pub/sub invalidation message would close that gap.
type caches struct {
	served    *lru[string, servedEntry]  // image name → what it serves (TTL)
	manifests *lru[string, manifestRef]  // "repo|version|ref" → manifest (or miss)
	blobs     *lru[string, bool]         // "repo|version|digest" → in version
	data      *lru[string, manifestData] // manifest digest → bytes (cost-bounded)
	spaces    *lru[string, bool]         // namespace name → exists (TTL)
	tags      *lru[string, []string]     // "repo|version" → every tag name, sorted (cost-bounded)

	// gen counts invalidations. A lookup remembers gen before it reads the
	// database and stores its answer only if gen did not move meanwhile, so
	// an answer read before a push commits cannot outlive the push's
	// invalidation.
	gen atomic.Uint64
}

// servedEntry is a cached resolve result; found=false caches a miss.
type servedEntry struct {
	s     served
	found bool
}

func newCaches(entries int, dataBytes int64, latestTTL time.Duration) *caches {
	mutable := entries
	if latestTTL <= 0 {
		mutable = 0 // no TTL: do not cache what can change
	}
	return &caches{
		served:    newLRU[string, servedEntry](mutable, 0, latestTTL),
		manifests: newLRU[string, manifestRef](entries, 0, 0),
		blobs:     newLRU[string, bool](entries, 0, 0),
		data:      newLRU[string, manifestData](entries, dataBytes, 0),
		spaces:    newLRU[string, bool](mutable, 0, latestTTL),
		tags:      newLRU[string, []string](entries, dataBytes/2, 0),
	}
}

// invalidate forgets what name serves.
func (c *caches) invalidate(name string) {
	c.gen.Add(1)
	c.served.remove(name)
}

// invalidateServed forgets what every name serves: a distribution changed
// otherwise than by a push (its privacy, its base path, through the REST API).
func (c *caches) invalidateServed() {
	c.gen.Add(1)
	c.served.clear()
}

// invalidateNamespace forgets whether namespace ns exists.
func (c *caches) invalidateNamespace(ns string) {
	c.gen.Add(1)
	c.spaces.remove(ns)
}

// lru is a least-recently-used map bounded by entry count and, if maxCost is
// positive, by the sum of the entries' costs. A positive ttl expires entries.
// A zero maxEntries disables it.
type lru[K comparable, V any] struct {
	mu         sync.Mutex
	maxEntries int
	maxCost    int64
	ttl        time.Duration
	cost       int64
	order      *list.List // front = most recent
	items      map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key     K
	val     V
	cost    int64
	expires time.Time
}

func newLRU[K comparable, V any](maxEntries int, maxCost int64, ttl time.Duration) *lru[K, V] {
	return &lru[K, V]{maxEntries: maxEntries, maxCost: maxCost, ttl: ttl, order: list.New(), items: map[K]*list.Element{}}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	var zero V
	if c.maxEntries == 0 {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	it := el.Value.(*lruItem[K, V])
	if c.ttl > 0 && time.Now().After(it.expires) {
		c.removeElement(el)
		return zero, false
	}
	c.order.MoveToFront(el)
	return it.val, true
}

// put stores v with cost (ignored unless maxCost is set).
func (c *lru[K, V]) put(k K, v V, cost int64) { c.putIf(k, v, cost, nil) }

// putIf stores v if ok (checked under the cache's lock) returns true.
func (c *lru[K, V]) putIf(k K, v V, cost int64, ok func() bool) {
	if c.maxEntries == 0 || (c.maxCost > 0 && cost > c.maxCost) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok != nil && !ok() {
		return
	}
	if el, ok := c.items[k]; ok {
		c.removeElement(el)
	}
	it := &lruItem[K, V]{key: k, val: v, cost: cost}
	if c.ttl > 0 {
		it.expires = time.Now().Add(c.ttl)
	}
	c.items[k] = c.order.PushFront(it)
	c.cost += cost
	for c.order.Len() > c.maxEntries || (c.maxCost > 0 && c.cost > c.maxCost) {
		c.removeElement(c.order.Back())
	}
}

func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.removeElement(el)
	}
}

func (c *lru[K, V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.items)
	c.cost = 0
}

func (c *lru[K, V]) removeElement(el *list.Element) {
	it := c.order.Remove(el).(*lruItem[K, V])
	delete(c.items, it.key)
	c.cost -= it.cost
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
