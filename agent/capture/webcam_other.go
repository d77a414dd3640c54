//go:build !linux

package capture

import "errors"

func openWebcam(cfg DeviceConfig) (Device, DeviceConfig, error) {
	return nil, cfg, errors.New("v4l2 cameras need Linux")
}
