package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// logSyncer makes everything badger has appended to its logs so far
// durable; it is the fsync of the group commit.
//
// badger's own DB.Sync is not enough: it syncs the write-ahead log of the
// active memtable and the newest value log file only. When a memtable fills
// up, badger moves it aside (to be flushed into a table in the background)
// and starts a new one with a new log, without syncing the old log. A step
// that committed into the old memtable just before that rotation would be
// acknowledged by a DB.Sync that never touched its log. Value log files
// rotate the same way.
//
// So each round syncs the files themselves, found in the directory: every
// write-ahead log (*.mem) and value log (*.vlog) not yet known to be synced
// for good. A log with a newer one of its kind beside it no longer receives
// writes (badger's single write goroutine opens the new log only after its
// last write to the old one), so once synced it is never synced again; the
// newest of each kind is synced every round. A log that disappeared between
// listing and syncing was flushed into a table (which badger syncs, and
// records in its synced manifest, before it deletes the log) or collected
// by value log GC. When a round syncs a file it has not seen before, it
// also syncs the directory, so the new file's name survives a power cut.
//
// badger writes its logs through shared memory maps; fsync on our own
// descriptor writes back the file's dirty pages however they were written
// (on Linux, badger's msync(MS_SYNC) is that same file sync).
//
// A logSyncer is used by one goroutine at a time (Open, then the syncer).
type logSyncer struct {
	dir string

	// final holds the logs synced after they stopped receiving writes.
	final map[string]bool

	// named holds the logs whose directory entry has been synced.
	named map[string]bool
}

func newLogSyncer(dir string) *logSyncer {
	return &logSyncer{dir: dir, final: map[string]bool{}, named: map[string]bool{}}
}

// logFile is one badger log in the directory.
type logFile struct {
	name string
	ext  string
	fid  uint64
}

// badgerLogs lists the write-ahead and value logs in dir.
func badgerLogs(dir string) ([]logFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var logs []logFile
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".mem" && ext != ".vlog" {
			continue
		}
		fid, err := strconv.ParseUint(strings.TrimSuffix(name, ext), 10, 64)
		if err != nil {
			continue
		}
		logs = append(logs, logFile{name: name, ext: ext, fid: fid})
	}
	return logs, nil
}

// sync makes every log write that happened before the call durable.
func (l *logSyncer) sync() error {
	logs, err := badgerLogs(l.dir)
	if err != nil {
		return fmt.Errorf("list logs: %w", err)
	}
	newest := map[string]uint64{}
	for _, f := range logs {
		newest[f.ext] = max(newest[f.ext], f.fid)
	}

	present := make(map[string]bool, len(logs))
	var todo []logFile
	for _, f := range logs {
		present[f.name] = true
		if !l.final[f.name] {
			todo = append(todo, f)
		}
	}

	// The files are synced in parallel: the filesystem can serve them
	// with one journal commit and one cache flush instead of one each.
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = syncFile(filepath.Join(l.dir, todo[i].name))
		}()
	}
	wg.Wait()

	var fresh []string
	for i, f := range todo {
		switch err := errs[i]; {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return err
		}
		if !l.named[f.name] {
			fresh = append(fresh, f.name)
		}
		if f.fid < newest[f.ext] {
			l.final[f.name] = true
		}
	}
	if len(fresh) > 0 {
		if err := syncFile(l.dir); err != nil {
			return err
		}
		for _, name := range fresh {
			l.named[name] = true
		}
	}
	for name := range l.final {
		if !present[name] {
			delete(l.final, name)
		}
	}
	for name := range l.named {
		if !present[name] {
			delete(l.named, name)
		}
	}
	return nil
}

// syncFile fsyncs the file or directory at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
