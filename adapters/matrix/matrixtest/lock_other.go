//go:build !unix

package matrixtest

import (
	"context"
	"errors"
)

func lockFile(context.Context, string) (func(), error) {
	return nil, errors.ErrUnsupported
}
