package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"testing/fstest"
)

func TestKargsReplaceDelete(t *testing.T) {
	k := ParseKargs(`root=LABEL=myroot rw console=ttyS0 console=tty0 ostree=/x quiet="a b" init`)
	if got := strings.Join(SplitKargs(`a "b c" d=" e"`), "|"); got != `a|"b c"|d=" e"` {
		t.Errorf("split: %q", got)
	}
	k.Replace("console=ttyS1,115200")
	k.Delete("rw")
	k.Append("quiet")
	want := `root=LABEL=myroot console=ttyS1,115200 ostree=/x quiet="a b" init quiet`
	if k.String() != want {
		t.Errorf("got  %q\nwant %q", k.String(), want)
	}
	if !k.Delete("quiet=\"a b\"") || k.String() != `root=LABEL=myroot console=ttyS1,115200 ostree=/x init quiet` {
		t.Errorf("delete key=value: %q", k.String())
	}
	if k.Delete("nosuch") {
		t.Error("delete of a missing key reported a removal")
	}
	if v, ok := k.Get("root"); !ok || v != "LABEL=myroot" {
		t.Errorf("get root: %q %v", v, ok)
	}
}

func TestParseKargsFile(t *testing.T) {
	ks, err := ParseKargsFile("a.toml", []byte(`kargs = ["console=tty0 nosmt", "quiet"]`), "x86_64")
	if err != nil || strings.Join(ks, " ") != "console=tty0 nosmt quiet" {
		t.Fatalf("got %q, %v", ks, err)
	}
	ks, err = ParseKargsFile("a.toml", []byte("kargs = [\"x\"]\nmatch-architectures = [\"aarch64\"]\n"), "x86_64")
	if err != nil || ks != nil {
		t.Fatalf("other arch: got %q, %v", ks, err)
	}
	for name, bad := range map[string]string{
		"syntax":  `kargs = ["x"`,
		"unknown": "kargs = [\"x\"]\nfoo = 1\n",
		"missing": `match-architectures = ["x86_64"]`,
		"type":    `kargs = "x"`,
	} {
		if _, err := ParseKargsFile(name+".toml", []byte(bad), "x86_64"); err == nil || !strings.Contains(err.Error(), name+".toml") {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
}

func TestFindKernel(t *testing.T) {
	k := "usr/lib/modules/6.1.0/"
	fsys := fstest.MapFS{
		k + "vmlinuz":       {Data: []byte("KERNEL")},
		k + "initramfs.img": {Data: []byte("INITRD")},
		k + "dtb/b.dtb":     {Data: []byte("B")},
		k + "dtb/a/x.dtb":   {Data: []byte("AX")},
		k + "modules.dep":   {Data: []byte("")},
	}
	got, err := FindKernel(fsys)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("KERNELINITRDAXB"))
	if got.Checksum != hex.EncodeToString(sum[:]) || got.Kernel != "vmlinuz-6.1.0" || got.Initramfs != "initramfs-6.1.0.img" || !got.Dtb {
		t.Errorf("got %+v", got)
	}
	fsys["usr/lib/modules/6.2.0/vmlinuz"] = &fstest.MapFile{Data: []byte("K2")}
	if _, err := FindKernel(fsys); err == nil || !strings.Contains(err.Error(), "two kernels") {
		t.Errorf("two kernels: err = %v", err)
	}
	if _, err := FindKernel(fstest.MapFS{"usr/bin/sh": {}}); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("no kernel: err = %v", err)
	}
	c := strings.Repeat("ab", 32)
	got, err = FindKernel(fstest.MapFS{"boot/vmlinuz-5.0-" + c: {Data: []byte("k")}, "boot/initramfs-5.0.img-" + c: {Data: []byte("i")}})
	if err != nil || got.Checksum != c || got.Kernel != "vmlinuz-5.0" || got.Initramfs != "initramfs-5.0.img" {
		t.Errorf("legacy: %+v %v", got, err)
	}
}

func TestEntryFor(t *testing.T) {
	d := &Deployment{Stateroot: "myos", Checksum: "c", Kernel: &Kernel{Checksum: "bc", Kernel: "vmlinuz-6", Initramfs: "initramfs-6.img"},
		OSName: "MyOS", Version: "2.0", Options: "root=LABEL=r console=ttyS1 ostree=/old quiet"}
	got := string(entryFor(d, State{1, 1}, 0, 3, false).Bytes())
	want := "title MyOS 2.0 (ostree:0)\nversion 3\noptions root=LABEL=r console=ttyS1 ostree=/ostree/boot.1/myos/bc/0 quiet\nlinux /ostree/myos-bc/vmlinuz-6\ninitrd /ostree/myos-bc/initramfs-6.img\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	d.Kernel.Initramfs, d.Kernel.Devicetree, d.OSName, d.Options = "", "devicetree-6", "MyOS 2.0", "root=/dev/vda2"
	e := entryFor(d, State{0, 1}, 1, 2, true)
	want = "title MyOS 2.0 (ostree:myos:1)\nversion 1\noptions root=/dev/vda2 init=/ostree/boot.0/myos/bc/0/usr/lib/ostree/ostree-prepare-root ostree=/ostree/boot.0/myos/bc/0\ndevicetree /ostree/myos-bc/devicetree-6\nlinux /ostree/myos-bc/vmlinuz-6\n"
	if string(e.Bytes()) != want || e.Name != "ostree-1-myos.conf" {
		t.Errorf("got %s\n%s", e.Name, e.Bytes())
	}
	if p := ParseEntry(e.Name, e.Bytes()); string(p.Bytes()) != want {
		t.Errorf("parse round trip: %s", p.Bytes())
	}
}

func TestStrverscmp(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"10", "9", 1}, {"2", "2", 0}, {"1.10", "1.9", 1}, {"a", "b", -1}, {"1", "10", -1}} {
		if got := Strverscmp(c.a, c.b); got != c.want {
			t.Errorf("Strverscmp(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestOSName(t *testing.T) {
	n, err := OSName(fstest.MapFS{"usr/lib/os-release": {Data: []byte("ID=x\nPRETTY_NAME=\"My \\\"OS\\\" 1\"\n")}})
	if err != nil || n != `My "OS" 1` {
		t.Errorf("got %q %v", n, err)
	}
	if _, err := OSName(fstest.MapFS{}); err == nil {
		t.Error("no os-release accepted")
	}
}
