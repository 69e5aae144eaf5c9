package main

import (
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile writes data to a file in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// baseYAML makes a config valid without touching any field under test.
const baseYAML = `
auth:
  api_keys:
    - name: test
      key: test-api-key-0123456789
`

// TestLoadConfigPrecedence checks defaults < YAML < env < flags for every
// field that has a flag.
func TestLoadConfigPrecedence(t *testing.T) {
	fields := []struct {
		flag, env, yaml string
		get             func(Config) string
		def             string
		yamlV, envV     string
		flagV           string
	}{
		{"node-id", "ARENA_NODE_ID", "node_id: from-yaml", func(c Config) string { return c.NodeID }, defaultNodeID(DefaultListen), "from-yaml", "from-env", "from-flag"},
		{"region", "ARENA_REGION", "region: eu-west", func(c Config) string { return c.Region }, "local", "eu-west", "us-east", "ap-south"},
		{"listen", "ARENA_LISTEN", "listen: 127.0.0.1:1001", func(c Config) string { return c.Listen }, DefaultListen, "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"},
		{"mesh", "ARENA_MESH", "mesh: 127.0.0.1:2001", func(c Config) string { return c.Mesh }, DefaultMesh, "127.0.0.1:2001", "127.0.0.1:2002", "127.0.0.1:2003"},
		{"join", "ARENA_JOIN", "join: [a:1, b:2]", func(c Config) string { return strings.Join(c.Join, ",") }, "", "a:1,b:2", "c:3,d:4", "e:5"},
		{"data", "ARENA_DATA", "data: /yaml", func(c Config) string { return c.Data }, DefaultData, "/yaml", "/env", "/flag"},
		{"token-secret", "ARENA_TOKEN_SECRET", "auth: {token_secret: yaml-secret, api_keys: [{name: test, key: test-api-key-0123456789}]}", func(c Config) string { return c.Auth.TokenSecret }, "", "yaml-secret", "env-secret", "flag-secret"},
		{"dev", "ARENA_DEV", "dev: true", func(c Config) string { return map[bool]string{true: "true", false: "false"}[c.Dev] }, "false", "true", "false", "true"},
		{"log-level", "ARENA_LOG_LEVEL", "log_level: warn", func(c Config) string { return c.LogLevel }, "info", "warn", "error", "debug"},
	}
	for _, f := range fields {
		yamlWith := baseYAML + f.yaml + "\n"
		if f.flag == "token-secret" {
			yamlWith = f.yaml + "\n"
		}
		envV := f.envV
		if f.flag == "join" {
			envV = " c:3, ,d:4 " // spaces and empty entries are dropped
		}
		flagV := []string{"--" + f.flag + "=" + f.flagV}
		cases := []struct {
			name string
			yaml string
			env  []string
			args []string
			want string
		}{
			{"default", baseYAML, nil, nil, f.def},
			{"yaml", yamlWith, nil, nil, f.yamlV},
			{"empty env is unset", yamlWith, []string{f.env + "="}, nil, f.yamlV},
			{"env", yamlWith, []string{f.env + "=" + envV}, nil, f.envV},
			{"flag", yamlWith, []string{f.env + "=" + envV}, flagV, f.flagV},
			{"flag over default", baseYAML, nil, flagV, f.flagV},
		}
		for _, tc := range cases {
			t.Run(f.flag+"/"+tc.name, func(t *testing.T) {
				path := writeFile(t, "arena.yaml", tc.yaml)
				args := append([]string{"--config", path}, tc.args...)
				c, err := LoadConfig(args, tc.env, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.get(c); got != tc.want {
					t.Fatalf("%s = %q, want %q", f.flag, got, tc.want)
				}
			})
		}
	}
}

// TestLoadConfigFile checks how the file is found and read.
func TestLoadConfigFile(t *testing.T) {
	a := writeFile(t, "a.yaml", baseYAML+"region: from-a\n")
	b := writeFile(t, "b.yaml", baseYAML+"region: from-b\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want string // region, or the error
	}{
		{"ARENA_CONFIG", nil, []string{"ARENA_CONFIG=" + a}, "from-a"},
		{"--config wins", []string{"--config", b}, []string{"ARENA_CONFIG=" + a}, "from-b"},
		{"later env entry wins", nil, []string{"ARENA_CONFIG=" + b, "ARENA_CONFIG=" + a}, "from-a"},
		{"other variables ignored", []string{"--config", a}, []string{"REGION=x", "ARENA_REGIONS=y", "garbage"}, "from-a"},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, nil, "read config file"},
		{"empty file", []string{"--config", writeFile(t, "e.yaml", ""), "--dev"}, nil, "local"},
		{"comments only", []string{"--config", writeFile(t, "c.yaml", "# nothing\n"), "--dev"}, nil, "local"},
		{"too large", []string{"--config", writeFile(t, "big.yaml", "#"+strings.Repeat("x", maxConfigFile))}, nil, "larger than"},
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
		{"positional argument", []string{"--dev", "extra"}, nil, `unexpected argument "extra"`},
		{"bad ARENA_DEV", nil, []string{"ARENA_DEV=maybe"}, "ARENA_DEV"},
		{"no auth", nil, nil, ErrNoAuth.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(tc.args, tc.env, nil)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q, want %q", err, tc.want)
				}
				return
			}
			if c.Region != tc.want {
				t.Fatalf("region %q, want %q", c.Region, tc.want)
			}
		})
	}
	t.Run("ARENA_CLUSTER_KEY", func(t *testing.T) {
		const key = "MDEyMzQ1Njc4OWFiY2RlZg=="
		path := writeFile(t, "k.yaml", "cluster_key: bm90LXRoaXMtb25lLW5vdC10aGlzLW9uZQ==\n")
		c, err := LoadConfig([]string{"--dev", "--config", path}, []string{"ARENA_CLUSTER_KEY=" + key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		k, err := c.ClusterKeyBytes()
		if c.ClusterKey != key || err != nil || string(k) != "0123456789abcdef" {
			t.Fatalf("cluster key %q (%q, %v)", c.ClusterKey, k, err)
		}
	})
	t.Run("memory settings", func(t *testing.T) {
		path := writeFile(t, "m.yaml", "dedup_memory: 50000\nwal:\n  memtable_mb: 64\n")
		c, err := LoadConfig([]string{"--dev", "--config", path}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.DedupMemory != 50000 || c.WAL.MemTableMB != 64 {
			t.Fatalf("dedup_memory %d, wal.memtable_mb %d; want 50000 and 64", c.DedupMemory, c.WAL.MemTableMB)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out strings.Builder
		_, err := LoadConfig([]string{"-h"}, nil, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("error %v, want flag.ErrHelp", err)
		}
		for _, f := range []string{"-config", "-node-id", "-region", "-listen", "-mesh", "-join", "-data", "-token-secret", "-dev", "-log-level"} {
			if !strings.Contains(out.String(), f) {
				t.Errorf("usage does not mention %s:\n%s", f, out.String())
			}
		}
	})
}

// TestYAMLErrors checks that bad YAML is refused with the key and line.
func TestYAMLErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "lisen: 127.0.0.1:1\n", `line 1: unknown key "lisen" in the top level`},
		{"unknown auth key", "auth:\n  secret: x\n", `line 2: unknown key "secret" in auth`},
		{"unknown api key field", "auth:\n  api_keys:\n    - name: a\n      pubs: [x]\n", `unknown key "pubs" in auth.api_keys`},
		{"unknown limits key", "limits: {rate: 5}\n", `unknown key "rate" in limits`},
		{"unknown wal key", "wal: {retention: 5}\n", `unknown key "retention" in wal`},
		{"unknown placement key", "placement: [{prefix: a, home: b}]\n", `unknown key "home" in placement`},
		{"wrong type", "ring_size: lots\n", "ring_size"},
		{"duration as number", "drain_timeout: 10\n", "cannot unmarshal"},
		{"bad duration", "wal: {dedup_window: soon}\n", "cannot unmarshal"},
		{"list for a string", "region: [a]\n", "cannot unmarshal"},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal"},
		{"two documents", "region: a\n---\nregion: b\n", "more than one YAML document"},
		{"syntax", "region: [a\n", "yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			err := decodeYAML([]byte(tc.yaml), &c)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "main.") {
				t.Fatalf("error %q names Go types", err)
			}
		})
	}
	t.Run("durations and latency", func(t *testing.T) {
		var c Config
		err := decodeYAML([]byte("drain_timeout: 3s\nwal: {retention_age: 2h30m}\nlatency: {eu: {us: 40ms}}\n"), &c)
		if err != nil {
			t.Fatal(err)
		}
		if c.DrainTimeout != 3*time.Second || c.WAL.RetentionAge != 150*time.Minute || c.Latency["eu"]["us"] != 40*time.Millisecond {
			t.Fatalf("decoded %+v", c)
		}
	})
}

// validConfig is a config that passes Validate, for tests to break.
func validConfig() Config {
	return Config{
		NodeID: "n1",
		Auth:   AuthConfig{TokenSecret: "s3cret"},
	}
}

// TestValidateErrors checks every validation error and its message.
func TestValidateErrors(t *testing.T) {
	pemFile := writeFile(t, "bad.pem", "not a pem")
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no auth", func(c *Config) { c.Auth.TokenSecret = "" }, ErrNoAuth.Error()},
		{"dev on all interfaces", func(c *Config) { c.Dev = true; c.Listen = "0.0.0.0:8080" }, `refused unless every listener is on a loopback address; listen "0.0.0.0:8080" is not`},
		{"dev on empty host", func(c *Config) { c.Dev = true; c.Listen = ":8080" }, `listen ":8080" is not`},
		{"dev on public mesh", func(c *Config) { c.Dev = true; c.Mesh = "10.0.0.5:7946" }, `mesh "10.0.0.5:7946" is not`},
		{"dev on a host name", func(c *Config) { c.Dev = true; c.Mesh = "arena.example.com:7946" }, "loopback"},
		{"dev on IPv6 any", func(c *Config) { c.Dev = true; c.Listen = "[::]:8080" }, "loopback"},
		{"listen not host:port", func(c *Config) { c.Listen = "8080" }, `listen "8080": not host:port`},
		{"listen port word", func(c *Config) { c.Listen = "127.0.0.1:http" }, "not a number"},
		{"listen port too big", func(c *Config) { c.Listen = "127.0.0.1:70000" }, "not a number from 0 to 65535"},
		{"mesh bad", func(c *Config) { c.Mesh = "127.0.0.1" }, "mesh"},
		{"same port", func(c *Config) { c.Listen = "127.0.0.1:9000"; c.Mesh = "127.0.0.1:9000" }, "different ports"},
		{"join bad", func(c *Config) { c.Join = []string{"a:1", "b"} }, `join[1] "b"`},
		{"join port 0", func(c *Config) { c.Join = []string{"a:0"} }, "port 0"},
		{"bootstrap expect", func(c *Config) { c.BootstrapExpect = -1 }, "bootstrap_expect -1"},
		{"node id", func(c *Config) { c.NodeID = "no spaces" }, "node_id"},
		{"node id long", func(c *Config) { c.NodeID = strings.Repeat("n", 129) }, "node_id"},
		{"region", func(c *Config) { c.Region = "eu west" }, "region"},
		{"region colon", func(c *Config) { c.Region = "eu:west" }, "region"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"log level number", func(c *Config) { c.LogLevel = "3" }, "log_level"},
		{"max data", func(c *Config) { c.Limits.MaxDataBytes = -1 }, "limits.max_data_bytes"},
		{"publish rate", func(c *Config) { c.Limits.PublishRate = -1 }, "limits.publish_rate"},
		{"publish rate NaN", func(c *Config) { c.Limits.PublishRate = math.NaN() }, "limits.publish_rate"},
		{"publish rate Inf", func(c *Config) { c.Limits.PublishRate = math.Inf(1) }, "limits.publish_rate"},
		{"publish burst", func(c *Config) { c.Limits.PublishBurst = -1 }, "limits.publish_burst"},
		{"send queue", func(c *Config) { c.Limits.SendQueue = -1 }, "limits.send_queue"},
		{"retention count", func(c *Config) { c.WAL.RetentionCount = -1 }, "wal.retention_count"},
		{"retention age", func(c *Config) { c.WAL.RetentionAge = -time.Hour }, "wal.retention_age"},
		{"dedup window", func(c *Config) { c.WAL.DedupWindow = -time.Second }, "wal.dedup_window"},
		{"ring size", func(c *Config) { c.RingSize = -1 }, "ring_size"},
		{"dedup memory", func(c *Config) { c.DedupMemory = -1 }, "dedup_memory -1"},
		{"drain timeout", func(c *Config) { c.DrainTimeout = -1 }, "drain_timeout"},
		{"hot idle", func(c *Config) { c.HotIdle = -time.Second }, "hot_idle"},
		{"sync interval negative", func(c *Config) { c.WAL.SyncInterval = -time.Millisecond }, "wal.sync_interval"},
		{"sync interval too long", func(c *Config) { c.WAL.SyncInterval = time.Second }, "wal.sync_interval 1s: must be at most 100ms"},
		{"memtable negative", func(c *Config) { c.WAL.MemTableMB = -1 }, "wal.memtable_mb -1: must be 0 (the default, 128) or from 4 to 1024"},
		{"memtable too small", func(c *Config) { c.WAL.MemTableMB = 3 }, "wal.memtable_mb 3"},
		{"memtable too large", func(c *Config) { c.WAL.MemTableMB = 1025 }, "wal.memtable_mb 1025"},
		{"memtable overflowing", func(c *Config) { c.WAL.MemTableMB = 1 << 44 }, "wal.memtable_mb 17592186044416"},
		{"pem and pem_file", func(c *Config) {
			c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "EdDSA", PEM: "x", PEMFile: "y"}}
		}, "auth.public_keys[0]: set exactly one of pem and pem_file"},
		{"neither pem nor pem_file", func(c *Config) { c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "EdDSA"}} }, "exactly one"},
		{"bad pem", func(c *Config) { c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "EdDSA", PEM: "x"}} }, "auth.public_keys[0] (EdDSA): no PEM block"},
		{"bad alg", func(c *Config) { c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "HS256", PEM: "x"}} }, "not supported"},
		{"missing pem_file", func(c *Config) {
			c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "EdDSA", PEMFile: filepath.Join(t.TempDir(), "no.pem")}}
		}, "read pem_file"},
		{"pem_file a directory", func(c *Config) { c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "EdDSA", PEMFile: t.TempDir()}} }, "not a regular file"},
		{"bad pem_file", func(c *Config) { c.Auth.PublicKeys = []PublicKeyConfig{{Alg: "EdDSA", PEMFile: pemFile}} }, "no PEM block"},
		{"short api key", func(c *Config) { c.Auth.APIKeys = []APIKeyConfig{{Name: "a", Key: "short"}} }, `auth.api_keys[0] ("a"): key is shorter`},
		{"api key bad pattern", func(c *Config) {
			c.Auth.APIKeys = []APIKeyConfig{{Name: "a", Key: "0123456789abcdef", Pub: []string{"a b"}}}
		}, "pub"},
		{"api key names twice", func(c *Config) {
			c.Auth.APIKeys = []APIKeyConfig{{Name: "a", Key: "0123456789abcdef"}, {Name: "a", Key: "fedcba9876543210"}}
		}, "used twice"},
		{"allowed origin", func(c *Config) { c.Auth.AllowedOrigins = []string{"[bad"} }, "auth.allowed_origins[0]"},
		{"empty allowed origin", func(c *Config) { c.Auth.AllowedOrigins = []string{""} }, "auth.allowed_origins[0]"},
		{"cluster key not base64", func(c *Config) { c.ClusterKey = "not base64!" }, "cluster_key: not base64"},
		{"cluster key size", func(c *Config) { c.ClusterKey = "YWJj" }, "decodes to 3 bytes"},
		{"default region", func(c *Config) { c.DefaultRegion = "a b" }, "default_region"},
		{"placement prefix", func(c *Config) { c.Placement = []PlacementRule{{Prefix: "a b", Region: "eu"}} }, "placement[0].prefix"},
		{"placement empty prefix", func(c *Config) { c.Placement = []PlacementRule{{Region: "eu"}} }, "placement[0].prefix"},
		{"placement region", func(c *Config) { c.Placement = []PlacementRule{{Prefix: "eu:"}} }, "placement[0].region"},
		{"placement twice", func(c *Config) {
			c.Placement = []PlacementRule{{Prefix: "eu:", Region: "eu"}, {Prefix: "eu:", Region: "us"}}
		}, "appears twice"},
		{"latency region", func(c *Config) { c.Latency = map[string]map[string]time.Duration{"a b": {"us": 1}} }, "latency"},
		{"latency to region", func(c *Config) { c.Latency = map[string]map[string]time.Duration{"eu": {"": 1}} }, "latency.eu"},
		{"latency negative", func(c *Config) { c.Latency = map[string]map[string]time.Duration{"eu": {"us": -1}} }, "latency.eu.us"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			t.Log(err)
			if err == nil {
				t.Fatalf("accepted %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
	t.Run("no auth is ErrNoAuth", func(t *testing.T) {
		c := Config{}
		if err := c.Validate(); !errors.Is(err, ErrNoAuth) {
			t.Fatalf("error %v, want ErrNoAuth", err)
		}
	})
	t.Run("every error is reported", func(t *testing.T) {
		c := Config{Region: "a b", RingSize: -1}
		err := c.Validate()
		for _, want := range []string{"region", "ring_size", "no way to authenticate"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
}

// TestValidateAccepts checks configurations that must pass.
func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
	}{
		{"dev on loopback", func(c *Config) { c.Auth = AuthConfig{}; c.Dev = true }},
		{"dev on 127.0.0.2", func(c *Config) { c.Dev = true; c.Listen = "127.0.0.2:1"; c.Mesh = "127.9.9.9:2" }},
		{"dev on ::1", func(c *Config) { c.Dev = true; c.Listen = "[::1]:8080"; c.Mesh = "[::1]:7946" }},
		{"dev on localhost", func(c *Config) { c.Dev = true; c.Listen = "localhost:8080"; c.Mesh = "LocalHost:0" }},
		{"all interfaces without dev", func(c *Config) { c.Listen = ":8080"; c.Mesh = "0.0.0.0:7946" }},
		{"port 0 twice", func(c *Config) { c.Listen = "127.0.0.1:0"; c.Mesh = "127.0.0.1:0" }},
		{"api key only", func(c *Config) {
			c.Auth = AuthConfig{APIKeys: []APIKeyConfig{{Name: "a", Key: "0123456789abcdef", Pub: []string{"*"}}}}
		}},
		{"cluster key", func(c *Config) { c.ClusterKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }},
		{"mesh extras", func(c *Config) {
			c.DefaultRegion = "eu"
			c.Placement = []PlacementRule{{Prefix: "us:", Region: "us-east-1"}}
			c.Latency = map[string]map[string]time.Duration{"eu": {"us-east-1": 40 * time.Millisecond}}
		}},
		{"upper-case log level", func(c *Config) { c.LogLevel = "DEBUG" }},
		{"origins", func(c *Config) { c.Auth.AllowedOrigins = []string{"*.example.com", "https://app.example.com"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestValidateDefaults checks the defaults filled into a zero config.
func TestValidateDefaults(t *testing.T) {
	c := Config{Dev: true}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := Config{
		NodeID: c.NodeID, Region: "local", Listen: "127.0.0.1:8080", Mesh: "127.0.0.1:7946",
		Data: "./data", Dev: true, LogLevel: "info",
		Limits:       LimitsConfig{MaxDataBytes: 65536, PublishRate: 1000, PublishBurst: 2000, SendQueue: 256},
		WAL:          WALConfig{RetentionCount: 100000, RetentionAge: 168 * time.Hour, DedupWindow: 10 * time.Minute},
		RingSize:     1024,
		DrainTimeout: 10 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults\n%+v\nwant\n%+v", c, want)
	}
	if !strings.HasSuffix(c.NodeID, "-8080") || (host != "" && !strings.HasPrefix(c.NodeID, host[:min(len(host), 3)])) {
		t.Fatalf("node id %q, want <hostname>-8080", c.NodeID)
	}
	t.Run("port 0 node ids differ", func(t *testing.T) {
		a, b := Config{Dev: true, Listen: "127.0.0.1:0"}, Config{Dev: true, Listen: "127.0.0.1:0"}
		if a.Validate() != nil || b.Validate() != nil || a.NodeID == b.NodeID {
			t.Fatalf("node ids %q and %q", a.NodeID, b.NodeID)
		}
	})
	t.Run("burst follows rate", func(t *testing.T) {
		c := Config{Dev: true, Limits: LimitsConfig{PublishRate: 0.2}}
		if err := c.Validate(); err != nil || c.Limits.PublishBurst != 1 {
			t.Fatalf("burst %d, %v", c.Limits.PublishBurst, err)
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		again := c
		if err := again.Validate(); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("second Validate changed %+v to %+v (%v)", c, again, err)
		}
	})
}

// TestAuthenticatorConfig checks the auth.Config built for the edge.
func TestAuthenticatorConfig(t *testing.T) {
	c := Config{Dev: true, Auth: AuthConfig{
		TokenSecret: "s",
		APIKeys:     []APIKeyConfig{{Name: "b", Key: "0123456789abcdef", Pub: []string{"x"}, Admin: true}},
	}}
	ac, err := c.AuthenticatorConfig()
	if err != nil {
		t.Fatal(err)
	}
	if string(ac.Secret) != "s" || !ac.Dev || len(ac.APIKeys) != 1 || ac.APIKeys[0].Name != "b" || !ac.APIKeys[0].Admin {
		t.Fatalf("auth config %+v", ac)
	}
}

// TestExampleConfigsLoad loads every file in configs/.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	regions, err := filepath.Glob("../../configs/three-regions/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 || len(regions) != 3 {
		t.Fatalf("found %d top-level and %d three-region example configs, want single.yaml, dev.yaml and eu, us, ap", len(files), len(regions))
	}
	files = append(files, regions...)
	env := []string{"ARENA_TOKEN_SECRET=example-test-secret"}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := LoadConfig([]string{"--config", f}, env, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("single.yaml needs a secret", func(t *testing.T) {
		_, err := LoadConfig([]string{"--config", "../../configs/single.yaml"}, nil, nil)
		if !errors.Is(err, ErrNoAuth) {
			t.Fatalf("error %v, want ErrNoAuth", err)
		}
	})
	t.Run("dev.yaml is dev", func(t *testing.T) {
		c, err := LoadConfig([]string{"--config", "../../configs/dev.yaml"}, nil, nil)
		if err != nil || !c.Dev {
			t.Fatalf("dev %v, %v", c.Dev, err)
		}
	})
	t.Run("single.yaml documents every key", func(t *testing.T) {
		data, err := os.ReadFile("../../configs/single.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range yamlKeys(reflect.TypeFor[Config]()) {
			if !strings.Contains(string(data), key+":") {
				t.Errorf("single.yaml does not show %q", key)
			}
		}
	})
}

// yamlKeys lists the yaml keys of t's fields, recursing into structs and
// slices of structs.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		keys = append(keys, strings.Split(f.Tag.Get("yaml"), ",")[0])
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			keys = append(keys, yamlKeys(ft)...)
		}
	}
	return keys
}

// FuzzLoadConfigYAML checks that no file content makes decoding or
// validation panic.
func FuzzLoadConfigYAML(f *testing.F) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(baseYAML))
	f.Add([]byte("dev: true\nlisten: 0.0.0.0:1\nlatency: {a: {b: 1s}}\nplacement: [{prefix: x, region: y}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("limits: {publish_rate: .nan}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if err := decodeYAML(data, &c); err != nil {
			return
		}
		_ = c.Validate()
	})
}
