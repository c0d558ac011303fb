package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFileRunsReplicasOnPostgres checks deploy/compose.yaml as far
// as a machine without Docker can: it is YAML of the Compose file's shape,
// with PostgreSQL and at least two botbridge replicas on the same
// configuration, which parses, runs on PostgreSQL, and finds every
// variable it reads in each replica's environment.
func TestComposeFileRunsReplicasOnPostgres(t *testing.T) {
	body, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       string            `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			// The other keys the file uses, so that a misspelt one fails.
			Healthcheck     map[string]any `yaml:"healthcheck"`
			Restart         string         `yaml:"restart"`
			StopGracePeriod string         `yaml:"stop_grace_period"`
			Expose          []string       `yaml:"expose"`
		} `yaml:"services"`
		Name    string         `yaml:"name"`
		Volumes map[string]any `yaml:"volumes"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(body)))
	dec.KnownFields(true)
	if err := dec.Decode(&compose); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	if pg, ok := compose.Services["postgres"]; !ok || !strings.HasPrefix(pg.Image, "postgres:") {
		t.Errorf("no postgres service: %+v", compose.Services)
	}
	var replicas []string
	for name, s := range compose.Services {
		if name == "postgres" {
			continue
		}
		replicas = append(replicas, name)
		if !slices.Equal(s.Command, []string{"run", "-config", "/etc/botbridge/botbridge.yaml"}) ||
			!slices.Contains(s.Volumes, "./replicas.yaml:/etc/botbridge/botbridge.yaml:ro") {
			t.Errorf("service %s: command %v, volumes %v; want botbridge run on deploy/replicas.yaml", name, s.Command, s.Volumes)
		}
		if s.DependsOn["postgres"].Condition != "service_healthy" {
			t.Errorf("service %s does not wait for PostgreSQL to be healthy", name)
		}
		cfg, err := os.ReadFile("../../deploy/replicas.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(string(cfg), -1) {
			if _, ok := s.Environment[m[1]]; !ok {
				t.Errorf("service %s: deploy/replicas.yaml reads ${%s}, which its environment lacks", name, m[1])
			}
		}
	}
	if len(replicas) < 2 {
		t.Errorf("replicas %v; want two at least", replicas)
	}
	// Compose passes BOTBRIDGE_PUBLIC_URL empty when it is not set: the
	// file links are then off, and the configuration still loads.
	for _, public := range []string{"", "https://botbridge.example.org"} {
		f, err := os.Open("../../deploy/replicas.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig(f, env(map[string]string{"BOTBRIDGE_DB_PASSWORD": "pw", "BOTPRESS_WEBHOOK_ID": "wh",
			"BOTPRESS_ENCRYPTION_KEY": "key", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1",
			"BOTBRIDGE_PUBLIC_URL": public}))
		f.Close()
		if err != nil {
			t.Fatalf("deploy/replicas.yaml with BOTBRIDGE_PUBLIC_URL=%q: %v", public, err)
		}
		if cfg.Store.Driver != DriverPostgres || !strings.Contains(cfg.Store.DSN, "@postgres:5432/") {
			t.Errorf("store %+v; want PostgreSQL at the postgres service", cfg.Store)
		}
		if cfg.HTTP.PublicURL != public {
			t.Errorf("http.public_url %q; want %q from BOTBRIDGE_PUBLIC_URL", cfg.HTTP.PublicURL, public)
		}
	}
}
