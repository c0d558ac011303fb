package main

import (
	"context"

	"github.com/botbridge/botbridge/bridge"
)

// MatrixConfig configures the Matrix adapter; see config.example.yaml.
type MatrixConfig struct{}

// validate checks the matrix section; each error names its field.
func (c MatrixConfig) validate() []error { return nil }

// matrixAdapter builds the Matrix adapter when the configuration enables it,
// else returns nil.
func (s *Service) matrixAdapter(ctx context.Context) (bridge.Adapter, error) { return nil, nil }
