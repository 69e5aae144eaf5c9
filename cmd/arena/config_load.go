package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxConfigFile bounds the YAML file LoadConfig reads.
const maxConfigFile = 1 << 20

// LoadConfig builds the configuration of `arena serve` from args (the
// arguments after "serve") and env (os.Environ() form, "KEY=value"), in
// increasing precedence: defaults, the YAML file named by --config or
// ARENA_CONFIG, ARENA_* variables, flags. It then validates it (see
// Validate). Flag errors and -h usage go to output (nil: discarded); -h
// returns flag.ErrHelp.
//
// Variables: ARENA_CONFIG, ARENA_NODE_ID, ARENA_REGION, ARENA_LISTEN,
// ARENA_MESH, ARENA_JOIN (comma-separated), ARENA_DATA, ARENA_TOKEN_SECRET,
// ARENA_DEV (a bool: 1, true, 0, false), ARENA_LOG_LEVEL and
// ARENA_CLUSTER_KEY. An empty variable counts as unset.
func LoadConfig(args, env []string, output io.Writer) (Config, error) {
	if output == nil {
		output = io.Discard
	}
	fs, set, err := parseServeFlags(args, output)
	if err != nil {
		return Config{}, err
	}
	vars := envMap(env)

	var c Config
	path := vars["ARENA_CONFIG"]
	if f := fs.Lookup("config"); set["config"] {
		path = f.Value.String()
	}
	if path != "" {
		data, err := readConfigFile(path)
		if err != nil {
			return Config{}, err
		}
		if err := decodeYAML(data, &c); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := c.applyEnv(vars); err != nil {
		return Config{}, err
	}
	c.applyFlags(fs, set)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseServeFlags parses the flags of `arena serve` (PROTOCOL.md "Command
// line") and reports which were given.
func parseServeFlags(args []string, output io.Writer) (*flag.FlagSet, map[string]bool, error) {
	fs := flag.NewFlagSet("arena serve", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.String("config", "", "YAML configuration `file` (or ARENA_CONFIG)")
	fs.String("node-id", "", "unique, stable node `id` in the mesh (default <hostname>-<listen port>)")
	fs.String("region", DefaultRegion, "this node's `region`")
	fs.String("listen", DefaultListen, "client HTTP/WebSocket `address`")
	fs.String("mesh", DefaultMesh, "gossip + QUIC bind `address` (QUIC on the same port over UDP)")
	fs.String("join", "", "comma-separated mesh `addresses` of existing nodes")
	fs.String("data", DefaultData, "data `directory`")
	fs.String("mqtt-listen", "", "MQTT listener `address` (empty: no MQTT)")
	fs.String("token-secret", "", "HS256 `secret` of client tokens (prefer ARENA_TOKEN_SECRET: flags show in ps)")
	fs.Bool("dev", false, "accept clients without a token, with full permissions (loopback listeners only)")
	fs.String("log-level", DefaultLogLevel, "log `level`: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("arena serve: unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return fs, set, nil
}

// applyFlags overrides c with the flags that were given.
func (c *Config) applyFlags(fs *flag.FlagSet, set map[string]bool) {
	str := func(name string) string { return fs.Lookup(name).Value.String() }
	for name, dst := range map[string]*string{
		"node-id":      &c.NodeID,
		"region":       &c.Region,
		"listen":       &c.Listen,
		"mesh":         &c.Mesh,
		"data":         &c.Data,
		"mqtt-listen":  &c.MQTTListen,
		"token-secret": &c.Auth.TokenSecret,
		"log-level":    &c.LogLevel,
	} {
		if set[name] {
			*dst = str(name)
		}
	}
	if set["join"] {
		c.Join = splitList(str("join"))
	}
	if set["dev"] {
		c.Dev = fs.Lookup("dev").Value.String() == "true"
	}
}

// applyEnv overrides c with the ARENA_* variables that are set.
func (c *Config) applyEnv(vars map[string]string) error {
	for name, dst := range map[string]*string{
		"ARENA_NODE_ID":      &c.NodeID,
		"ARENA_REGION":       &c.Region,
		"ARENA_LISTEN":       &c.Listen,
		"ARENA_MESH":         &c.Mesh,
		"ARENA_DATA":         &c.Data,
		"ARENA_MQTT_LISTEN":  &c.MQTTListen,
		"ARENA_TOKEN_SECRET": &c.Auth.TokenSecret,
		"ARENA_LOG_LEVEL":    &c.LogLevel,
		"ARENA_CLUSTER_KEY":  &c.ClusterKey,
	} {
		if v := vars[name]; v != "" {
			*dst = v
		}
	}
	if v := vars["ARENA_JOIN"]; v != "" {
		c.Join = splitList(v)
	}
	if v := vars["ARENA_DEV"]; v != "" {
		dev, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("ARENA_DEV=%q is not a bool (use true or false)", v)
		}
		c.Dev = dev
	}
	return nil
}

// envMap turns "KEY=value" entries into a map; a later entry wins, as in
// the process environment.
func envMap(env []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "ARENA_") {
			m[k] = v
		}
	}
	return m
}

// splitList splits a comma-separated list, dropping spaces and empty
// entries.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// readConfigFile reads the YAML file at path.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read config file %s: %w", path, err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("config file %s is larger than %d bytes", path, maxConfigFile)
	}
	return data, nil
}

// decodeYAML decodes one YAML document into c, refusing unknown keys. An
// empty document leaves c unchanged.
func decodeYAML(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return yamlError(err, data)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document (remove the '---' separators)")
	}
	return nil
}

// yamlSections names the config types in yaml.v3's error messages by
// where they sit in the file.
var yamlSections = map[string]string{
	"main.Config":          "the top level",
	"main.AuthConfig":      "auth",
	"main.PublicKeyConfig": "auth.public_keys",
	"main.APIKeyConfig":    "auth.api_keys",
	"main.LimitsConfig":    "limits",
	"main.WALConfig":       "wal",
	"main.PlacementRule":   "placement",
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.*) not found in type (\S+)$`)
	lineRE         = regexp.MustCompile(`^line (\d+): `)
)

// yamlError rewrites yaml.v3's type errors in the file's terms: "line 3:
// unknown key "lisen" in the top level" rather than Go type names, and
// "line 5 (limits.send_queue): cannot unmarshal ..." naming the key.
func yamlError(err error, data []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var keys map[int]string
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if sm := unknownFieldRE.FindStringSubmatch(m); sm != nil {
			where := yamlSections[sm[3]]
			if where == "" {
				where = sm[3]
			}
			m = fmt.Sprintf("line %s: unknown key %q in %s", sm[1], sm[2], where)
		} else {
			for typ, where := range yamlSections {
				m = strings.ReplaceAll(m, typ, where)
			}
			if sm := lineRE.FindStringSubmatch(m); sm != nil {
				if keys == nil {
					keys = keyLines(data)
				}
				line, _ := strconv.Atoi(sm[1])
				if k := keys[line]; k != "" {
					m = fmt.Sprintf("line %d (%s): %s", line, k, m[len(sm[0]):])
				}
			}
			if strings.HasSuffix(m, "into time.Duration") {
				m += " (write durations with a unit, like 10s, 5m or 168h)"
			}
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyLines maps each line of a YAML document that holds a value to the
// dotted path of its key ("limits.send_queue", "auth.api_keys.0.key").
func keyLines(data []byte) map[int]string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	m := make(map[int]string)
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if n == nil || depth > 32 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				if _, ok := m[n.Content[i+1].Line]; !ok {
					m[n.Content[i+1].Line] = p
				}
				walk(n.Content[i+1], p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if path == "" {
					break // a document that is a list: no key to name
				}
				p := path + "." + strconv.Itoa(i)
				if _, ok := m[c.Line]; !ok {
					m[c.Line] = p
				}
				walk(c, p, depth+1)
			}
		}
	}
	walk(&root, "", 0)
	return m
}
