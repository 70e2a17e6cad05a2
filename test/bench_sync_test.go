package test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ggrandom "github.com/google/go-containerregistry/pkg/v1/random"
)

// TestBenchmarkSync (make bench; BERTH_BENCH=1) times a sync of 100 tags
// from a local reference registry into Berth (berth serve, embedded
// workers, SQLite and file storage) and `skopeo sync` of the same tags
// into a directory, in the same run on the same upstream, and prints the
// ratio. Both download every manifest and blob once and write them to
// local disk.
func TestBenchmarkSync(t *testing.T) {
	if os.Getenv("BERTH_BENCH") != "1" {
		t.Skip("set BERTH_BENCH=1 (make bench) to run the sync benchmark")
	}
	const (
		tags      = 100
		layerSize = 256 << 10
	)
	skopeo := requireTool(t, "skopeo")
	c := newSyncCluster(t, false)
	var wg sync.WaitGroup
	errs := make(chan error, tags)
	for i := range tags {
		wg.Go(func() {
			img, err := ggrandom.Image(layerSize, 2)
			if err != nil {
				errs <- err
				return
			}
			c.up.push(t, "bench/app", fmt.Sprintf("v%03d", i), img)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Berth: one sync task of every tag.
	reg := c.registry(t, "bench", c.up.URL, map[string]any{"download_concurrency": 8})
	img := c.remoteImage(t, map[string]any{"name": "bench/app", "upstream_name": "bench/app", "registry": reg})
	start := time.Now()
	v := c.sync(t, img.Href)
	berth := time.Since(start)
	if v.Result.Tags != tags || v.Result.BlobsDownloaded != 3*tags {
		t.Fatalf("berth sync: %+v", v.Result)
	}
	// A re-sync with no change: HEAD requests only.
	start = time.Now()
	again := c.sync(t, img.Href)
	resync := time.Since(start)
	if again.Result.Created {
		t.Fatalf("re-sync made a version: %+v", again.Result)
	}

	// skopeo sync of the same repository into a directory.
	dest := filepath.Join(c.dir, "skopeo")
	start = time.Now()
	run(t, skopeo, "sync", "--scoped", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
		"--src-creds", upUser+":"+upPass, c.up.Host+"/bench/app", dest)
	sk := time.Since(start)

	t.Logf("sync of %d tags (%d blobs, %.1f MiB): berth %.2fs, skopeo sync %.2fs, ratio berth/skopeo %.2f; berth re-sync without change %.2fs",
		tags, v.Result.BlobsDownloaded, float64(v.Result.BytesDownloaded)/(1<<20), berth.Seconds(), sk.Seconds(), berth.Seconds()/sk.Seconds(), resync.Seconds())
	fmt.Printf("BENCH sync %d tags: berth %.2fs skopeo %.2fs ratio %.2f (re-sync %.2fs)\n", tags, berth.Seconds(), sk.Seconds(), berth.Seconds()/sk.Seconds(), resync.Seconds())
}
