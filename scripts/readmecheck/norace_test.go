//go:build !race

package readmecheck

const raceBuild = false
