package imgstore

import "testing"

func TestEscapeRef(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker://quay.io/fedora/fedora-coreos:stable", "docker_3A__2F__2F_quay_2E_io/fedora/fedora-coreos_3A_stable"},
		{"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "sha256_3A_2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},
		{"a", "a"},
		{"a-b", "a-b"},
		{"a_b", "a__b"},
		{"_", "__"},
		{"/", "_2F_"},
		{"a/", "a_2F_"},
		{"a/b", "a/b"},
		{"a//b", "a/_2F_b"},
		{"-/x", "-_2F_x"},
		{"a.b", "a_2E_b"},
		{"é", "_E9_"},
		{"😀", "_1F600_"},
		{"docker://127.0.0.1:5000/os:1", "docker_3A__2F__2F_127_2E_0_2E_0_2E_1_3A_5000/os_3A_1"},
	} {
		got, err := EscapeRef(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("EscapeRef(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		back, err := UnescapeRef(got)
		if err != nil || back != tc.in {
			t.Errorf("UnescapeRef(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
	if got, err := UnescapeRef("a_3a_b"); err != nil || got != "a:b" {
		t.Errorf("UnescapeRef(lowercase hex) = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a\x00b", "\xff"} {
		if got, err := EscapeRef(bad); err == nil {
			t.Errorf("EscapeRef(%q) = %q, want an error", bad, got)
		}
	}
	for _, bad := range []string{"", "_", "a_3A", "_zz_", "_+3A_", "_0_", "_110000_"} {
		if got, err := UnescapeRef(bad); err == nil {
			t.Errorf("UnescapeRef(%q) = %q, want an error", bad, got)
		}
	}
}
