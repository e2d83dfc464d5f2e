package ostree

import "testing"

func TestKeyFile(t *testing.T) {
	kf, err := ParseKeyFile("[core]\nrepo_version=1\nmode=archive-z2\n\n# c\n[remote \"origin\"]\nurl=file:///x\\sy\n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ group, key, want string }{
		{"core", "repo_version", "1"},
		{"core", "mode", "archive-z2"},
		{`remote "origin"`, "url", "file:///x y"},
	}
	for _, tc := range tests {
		if got, ok := kf.Get(tc.group, tc.key); !ok || got != tc.want {
			t.Errorf("Get(%q,%q) = %q,%v want %q", tc.group, tc.key, got, ok, tc.want)
		}
	}
	kf.Set("core", "mode", "bare")
	kf.Set("core", "fsync", "false")
	if got, _ := kf.Get("core", "mode"); got != "bare" {
		t.Errorf("after Set mode = %q", got)
	}
	again, err := ParseKeyFile(kf.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := again.Get("core", "fsync"); got != "false" {
		t.Errorf("round trip lost fsync: %q", kf.String())
	}
	if _, err := ParseKeyFile("novalue\n"); err == nil {
		t.Error("a line outside any group must fail")
	}
}
