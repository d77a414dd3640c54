package bundle

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// elfHeaderLen covers e_ident, e_type and e_machine.
const elfHeaderLen = 20

type elfArch struct {
	machine elf.Machine
	class   elf.Class
	order   elf.Data
}

// elfArches maps GOARCH to what its ELF executables say.
var elfArches = map[string]elfArch{
	"amd64":    {elf.EM_X86_64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"arm64":    {elf.EM_AARCH64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"arm":      {elf.EM_ARM, elf.ELFCLASS32, elf.ELFDATA2LSB},
	"386":      {elf.EM_386, elf.ELFCLASS32, elf.ELFDATA2LSB},
	"riscv64":  {elf.EM_RISCV, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"ppc64le":  {elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"s390x":    {elf.EM_S390, elf.ELFCLASS64, elf.ELFDATA2MSB},
	"loong64":  {elf.EM_LOONGARCH, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"mips64le": {elf.EM_MIPS, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"mipsle":   {elf.EM_MIPS, elf.ELFCLASS32, elf.ELFDATA2LSB},
}

// GOARCH names the Go architecture of an ELF machine, class and byte order,
// or "" when there is none.
func goarch(m elf.Machine, c elf.Class, d elf.Data) string {
	for name, a := range elfArches {
		if a.machine == m && a.class == c && a.order == d {
			return name
		}
	}
	return ""
}

// CheckELF checks that head, the first bytes of a binary (20 or more), is
// the header of an ELF executable for goos/goarch. Only linux binaries are
// checked; other systems' are accepted as they are.
func CheckELF(head []byte, goos, goarch string) error {
	if goos != "linux" {
		return nil
	}
	want, ok := elfArches[goarch]
	if !ok {
		return fmt.Errorf("%w: no ELF machine known for GOARCH %q", ErrPlatform, goarch)
	}
	got, err := parseELFHead(head)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: binary is ELF %s (%s, %s), want %s for %s", ErrPlatform, got.machine, got.class, got.order, want.machine, goarch)
	}
	return nil
}

func parseELFHead(head []byte) (elfArch, error) {
	if len(head) < elfHeaderLen || !bytes.HasPrefix(head, []byte(elf.ELFMAG)) {
		return elfArch{}, fmt.Errorf("%w: payload is not an ELF binary", ErrPlatform)
	}
	a := elfArch{class: elf.Class(head[elf.EI_CLASS]), order: elf.Data(head[elf.EI_DATA])}
	var typ uint16
	switch a.order {
	case elf.ELFDATA2LSB:
		typ, a.machine = binary.LittleEndian.Uint16(head[16:]), elf.Machine(binary.LittleEndian.Uint16(head[18:]))
	case elf.ELFDATA2MSB:
		typ, a.machine = binary.BigEndian.Uint16(head[16:]), elf.Machine(binary.BigEndian.Uint16(head[18:]))
	default:
		return elfArch{}, fmt.Errorf("%w: ELF byte order %d", ErrPlatform, head[elf.EI_DATA])
	}
	if t := elf.Type(typ); t != elf.ET_EXEC && t != elf.ET_DYN {
		return elfArch{}, fmt.Errorf("%w: ELF type %s is not an executable", ErrPlatform, t)
	}
	return a, nil
}

// Info is what a binary says about itself without being run.
type Info struct {
	OS, Arch string // from the ELF header (Arch) and the Go build info
	// Version is the value of -X edgefleet/agent.Version=... in the build's
	// -ldflags, "" when it was not stamped.
	Version   string
	GoVersion string
	// Static is true when the binary has no dynamic loader (PT_INTERP).
	Static bool
}

// VersionVar is the variable the agent's version is stamped into.
const VersionVar = "edgefleet/agent.Version"

// Inspect reads the ELF header and Go build info of a binary. Arch comes
// from the ELF machine; when the build info names another GOARCH, Inspect
// fails with ErrPlatform.
func Inspect(r io.ReaderAt) (Info, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return Info{}, fmt.Errorf("bundle: inspect: %w: %v", ErrPlatform, err)
	}
	defer f.Close()
	info := Info{OS: "linux", Arch: goarch(f.Machine, f.Class, f.Data), Static: true}
	if info.Arch == "" {
		return Info{}, fmt.Errorf("bundle: inspect: %w: ELF machine %s (%s) has no Go architecture", ErrPlatform, f.Machine, f.Class)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			info.Static = false
		}
	}
	bi, err := buildinfo.Read(r)
	if err != nil {
		return Info{}, fmt.Errorf("bundle: inspect: not a Go binary: %w", err)
	}
	info.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			info.OS = s.Value
		case "GOARCH":
			if s.Value != info.Arch {
				return Info{}, fmt.Errorf("bundle: inspect: %w: build info says GOARCH %s, ELF header %s", ErrPlatform, s.Value, info.Arch)
			}
		case "-ldflags":
			info.Version = stampedVersion(s.Value)
		}
	}
	return info, nil
}

// stampedVersion finds -X edgefleet/agent.Version=V in a -ldflags value.
func stampedVersion(ldflags string) string {
	fields := strings.Fields(ldflags)
	for i, f := range fields {
		v := ""
		switch {
		case f == "-X" && i+1 < len(fields):
			v = fields[i+1]
		case strings.HasPrefix(f, "-X="):
			v = f[3:]
		default:
			continue
		}
		v = strings.Trim(v, `'"`)
		if val, ok := strings.CutPrefix(v, VersionVar+"="); ok {
			return val
		}
	}
	return ""
}
