package capture

import (
	"bytes"
	"image"
	"image/jpeg"
	"sync"
)

// Many USB cameras send MJPEG frames without Huffman tables (DHT segments):
// the AVI1 MJPEG convention assumes the standard tables of JPEG Annex K.
// Go's decoder needs them, so withHuffman inserts them. Go's own encoder
// writes exactly those standard tables, so they are taken from its output
// rather than copied into this file.
var standardDHT = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8)), nil); err != nil { // colour: all four tables
		return nil
	}
	seg, _ := findSegment(buf.Bytes(), 0xC4)
	return seg
})

// findSegment returns the first marker segment of type marker before the
// start of scan, and whether the stream is well formed up to SOS.
func findSegment(b []byte, marker byte) ([]byte, bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return nil, false
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return nil, false
		}
		m := b[i+1]
		if m == 0xFF { // fill byte
			i++
			continue
		}
		if m == 0xDA { // start of scan
			return nil, true
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return nil, false
		}
		if m == marker {
			return b[i : i+2+n], true
		}
		i += 2 + n
	}
	return nil, false
}

// sosOffset returns where the start-of-scan marker begins, or -1.
func sosOffset(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return -1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return -1
		}
		m := b[i+1]
		if m == 0xFF {
			i++
			continue
		}
		if m == 0xDA {
			return i
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 {
			return -1
		}
		i += 2 + n
	}
	return -1
}

// withHuffman returns b with the standard Huffman tables inserted before the
// scan when it has none; anything it cannot parse is returned unchanged for
// the decoder to reject.
func withHuffman(b []byte) []byte {
	seg, ok := findSegment(b, 0xC4)
	if !ok || seg != nil {
		return b
	}
	sos := sosOffset(b)
	dht := standardDHT()
	if sos < 0 || dht == nil {
		return b
	}
	out := make([]byte, 0, len(b)+len(dht))
	out = append(out, b[:sos]...)
	out = append(out, dht...)
	return append(out, b[sos:]...)
}
