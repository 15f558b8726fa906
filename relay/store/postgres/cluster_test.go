package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The tests need a real PostgreSQL. With $RELAY_TEST_POSTGRES set (a DSN of
// a role that may CREATE DATABASE) they use that server; otherwise TestMain
// starts a throwaway cluster from the initdb/pg_ctl it finds, on a unix
// socket in a temporary directory (no TCP port), with fsync=off unless
// $RELAY_TEST_PG_FSYNC=on (for honest benchmark figures). Every test gets
// its own database. Without either, the tests skip.
var (
	testDSN  func(db string) string // DSN of database db; nil: no server
	noServer string                 // why there is none
	dbSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if dsn := os.Getenv("RELAY_TEST_POSTGRES"); dsn != "" {
		testDSN = func(db string) string { return withDatabase(dsn, db) }
		return m.Run()
	}
	c, err := startCluster()
	if err != nil {
		noServer = err.Error()
		return m.Run()
	}
	defer c.stop()
	testDSN = func(db string) string {
		return fmt.Sprintf("host=%s user=postgres dbname=%s sslmode=disable", c.dir, db)
	}
	return m.Run()
}

// withDatabase returns dsn (a URL or key=value string) naming database db.
func withDatabase(dsn, db string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	return dsn + " dbname=" + db // the last value of a key wins
}

// newDatabase creates an empty database for t, dropped when t ends, and
// returns its DSN. It skips t when there is no server.
func newDatabase(t testing.TB) string {
	t.Helper()
	if testDSN == nil {
		t.Skipf("no PostgreSQL for this test: %s (set RELAY_TEST_POSTGRES to a DSN, or install the "+
			"postgresql package so that initdb and pg_ctl are found)", noServer)
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testDSN("postgres"))
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("relay_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, testDSN("postgres"))
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return testDSN(name)
}

// cluster is a throwaway PostgreSQL server.
type cluster struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // data in dir/data, the socket in dir
	cred *syscall.Credential
}

// startCluster initialises and starts a cluster. As root it runs the
// server as the postgres user (or nobody): initdb refuses to run as root.
func startCluster() (*cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "relay-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		if c.cred, err = serverUser(); err == nil {
			err = errors.Join(os.Chmod(dir, 0o755), os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)))
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	fsync := "off"
	if os.Getenv("RELAY_TEST_PG_FSYNC") == "on" {
		fsync = "on"
	}
	err = c.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--no-locale", "--no-sync")
	if err == nil {
		err = c.run("pg_ctl", "-D", filepath.Join(dir, "data"), "-l", filepath.Join(dir, "log"), "-w",
			"-o", fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=%s -c max_connections=200", dir, fsync), "start")
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start a test cluster: %w\n%s", err, log)
	}
	return c, nil
}

func (c *cluster) run(tool string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, tool), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, out)
	}
	return nil
}

func (c *cluster) stop() {
	if err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		fmt.Fprintln(os.Stderr, "stop the test cluster:", err)
	}
	os.RemoveAll(c.dir)
}

// findBinaries returns the directory of initdb and pg_ctl: from PATH, else
// the newest /usr/lib/postgresql/<version>/bin (Debian's layout).
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func serverUser() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("running as root and neither the postgres nor the nobody user exists")
}
