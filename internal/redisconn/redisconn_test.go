package redisconn

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"vouch/internal/testutil"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		// for a *redis.Client: its address and timeouts
		addr          string
		dial, read    time.Duration
		cluster       bool
		wantErrSubstr string
	}{
		{name: "url", o: Options{URL: "redis://10.0.0.1:6379/2"}, addr: "10.0.0.1:6379", dial: time.Second, read: time.Second},
		{name: "url with timeout", o: Options{URL: "redis://10.0.0.1:6379/0", Timeout: 5 * time.Second}, addr: "10.0.0.1:6379", dial: 5 * time.Second, read: 5 * time.Second},
		{name: "url parameters win", o: Options{URL: "redis://10.0.0.1:6379/0?dial_timeout=3s", Timeout: 5 * time.Second}, addr: "10.0.0.1:6379", dial: 3 * time.Second, read: 5 * time.Second},
		{name: "sentinel", o: Options{Sentinels: []string{"10.0.0.1:26379"}, MasterName: "m", Username: "u", Password: "p"}, addr: "FailoverClient", dial: time.Second, read: time.Second},
		{name: "cluster", o: Options{Cluster: []string{"10.0.0.1:7000"}}, cluster: true},
		{name: "bad url", o: Options{URL: "http://10.0.0.1"}, wantErrSubstr: "redis_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.o)
			if tc.wantErrSubstr != "" {
				testutil.ErrorMentions(t, err, tc.wantErrSubstr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.cluster {
				cc, ok := c.(*redis.ClusterClient)
				if !ok {
					t.Fatalf("%T, want a ClusterClient", c)
				}
				if o := cc.Options(); o.DialTimeout != time.Second || !o.DisableIdentity {
					t.Errorf("cluster options %+v", o)
				}
				return
			}
			rc, ok := c.(*redis.Client)
			if !ok {
				t.Fatalf("%T, want a Client", c)
			}
			o := rc.Options()
			if o.Addr != tc.addr || o.DialTimeout != tc.dial || o.ReadTimeout != tc.read || o.WriteTimeout != tc.read ||
				!o.DisableIdentity || !o.ContextTimeoutEnabled || o.MaxRetries != 1 {
				t.Errorf("options: addr %q dial %v read %v write %v identity off %v ctx %v retries %d",
					o.Addr, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.DisableIdentity, o.ContextTimeoutEnabled, o.MaxRetries)
			}
			if o.Username != tc.o.Username || o.Password != tc.o.Password {
				t.Errorf("credentials %q %q", o.Username, o.Password)
			}
		})
	}
}
