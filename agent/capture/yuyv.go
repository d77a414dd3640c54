package capture

import (
	"fmt"
	"image"
)

// YUYVToRGBA converts a packed YUYV 4:2:2 frame (Y0 U Y1 V per two pixels,
// BT.601 full range as V4L2 webcams deliver it) of width w and height h
// into an RGBA image. It gives the same colours as image/color.YCbCrToRGB.
func YUYVToRGBA(b []byte, w, h int) (*image.RGBA, error) {
	if w <= 0 || h <= 0 || w%2 != 0 {
		return nil, fmt.Errorf("capture: yuyv: bad size %dx%d (width must be even)", w, h)
	}
	if len(b) < w*h*2 {
		return nil, fmt.Errorf("capture: yuyv: %d bytes for %dx%d, want %d", len(b), w, h, w*h*2)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		src := b[y*w*2 : (y+1)*w*2]
		dst := img.Pix[y*img.Stride : y*img.Stride+w*4]
		for x := 0; x+4 <= len(src); x += 4 {
			y0, cb, y1, cr := src[x], src[x+1], src[x+2], src[x+3]
			d := dst[x*2 : x*2+8]
			d[0], d[1], d[2] = ycc(y0, cb, cr)
			d[3] = 255
			d[4], d[5], d[6] = ycc(y1, cb, cr)
			d[7] = 255
		}
	}
	return img, nil
}

// ycc is image/color.YCbCrToRGB, inlined.
func ycc(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy1 := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy1 + 91881*cr1
	if uint32(r)&0xff000000 == 0 {
		r >>= 16
	} else {
		r = ^(r >> 31)
	}
	g := yy1 - 22554*cb1 - 46802*cr1
	if uint32(g)&0xff000000 == 0 {
		g >>= 16
	} else {
		g = ^(g >> 31)
	}
	b := yy1 + 116130*cb1
	if uint32(b)&0xff000000 == 0 {
		b >>= 16
	} else {
		b = ^(b >> 31)
	}
	return uint8(r), uint8(g), uint8(b)
}
