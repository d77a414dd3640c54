// Package yolo turns images into YOLO model inputs and YOLO model outputs into
// detections, the way Ultralytics does: letterbox (keep aspect, pad 114,
// centred) into the engine's input tensor in any of NHWC/NCHW and
// float32/int8/uint8; decoders for the YOLOv5 [1,A,5+nc], YOLOv8/YOLO11
// [1,4+nc,A] and end-to-end [1,N,6] heads, chosen from tensor shapes alone;
// class-aware NMS; and boxes mapped back to the original image.
//
// Detector ties these to a models.Engine and implements models.Detector.
package yolo
