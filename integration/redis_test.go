package integration

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-identity/caddy-identity/internal/testenv"
)

// redisStartTimeout bounds the wait for redis-server to answer PING.
const redisStartTimeout = 10 * time.Second

// redisServer is a redis-server started by one test on a free loopback port, without persistence, stopped on
// cleanup.
type redisServer struct {
	Addr   string
	Client *redis.Client // the test's own connection
}

// startRedisServer starts redis-server. Without it the test is skipped with a one-line notice (and fails under
// CI=true, where .ci/run installs it).
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if testenv.CI() {
			t.Fatal("CI=true and no redis-server found (apt-get install redis-server)")
		}
		skipRedisOnce.Do(func() {
			testenv.Notice("integration: shared-store tests SKIPPED: no redis-server in PATH (apt-get install redis-server)")
		})
		t.Skip("no redis-server in PATH (apt-get install redis-server)")
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() {
		signalProcessGroup(cmd, true)
		_ = cmd.Wait()
	})
	s := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	s.Client = redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	t.Cleanup(func() { s.Client.Close() })
	deadline := time.Now().Add(redisStartTimeout)
	for {
		err := s.Client.Ping(context.Background()).Err()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s does not answer: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// skipRedisOnce keeps the skip notice to one line per run.
var skipRedisOnce sync.Once

// dump returns every key of the server with its value (strings as they are, sets as their members).
func (s *redisServer) dump(t *testing.T) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	iter := s.Client.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := s.Client.Type(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			v, err := s.Client.Get(ctx, key).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			out[key] = []string{v}
		case "set":
			out[key] = s.Client.SMembers(ctx, key).Val()
		default:
			out[key] = nil
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
