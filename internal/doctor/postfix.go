package doctor

import (
	"bufio"
	"fmt"
	"os/exec"
	"path"
	"strings"
)

// Postfix is a Postfix configuration as postconf reports it: every main.cf
// parameter with $names expanded, and master.cf's services with their -o
// overrides (expanded too).
type Postfix struct {
	Dir      string            // config directory ("" for postconf's default)
	Main     map[string]string // postconf -x
	Services []Service         // postconf -M, with postconf -P -x
}

// Service is one master.cf line.
type Service struct {
	Name, Type string // "submission", "inet"
	Chroot     bool   // the chroot column; "-" is n since Postfix 3.0
	Command    string // "smtpd", "cleanup", ...
	Overrides  map[string]string
}

// ID is master.cf's service/type name of the service.
func (s Service) ID() string { return s.Name + "/" + s.Type }

// ReadPostfix runs postconf (the binary at postconf, e.g. Zimbra's
// /opt/zimbra/common/sbin/postconf) on the config directory dir.
func ReadPostfix(postconf, dir string) (*Postfix, error) {
	run := func(args ...string) (string, error) {
		if dir != "" {
			args = append([]string{"-c", dir}, args...)
		}
		out, err := exec.Command(postconf, args...).Output()
		if err != nil {
			msg := err.Error()
			if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
				msg = strings.TrimSpace(string(ee.Stderr))
			}
			return "", fmt.Errorf("%s %s: %s", postconf, strings.Join(args, " "), msg)
		}
		return string(out), nil
	}
	pf := &Postfix{Dir: dir}
	out, err := run("-x")
	if err != nil {
		return nil, err
	}
	pf.Main = parseAssignments(out)
	if out, err = run("-M"); err != nil {
		return nil, err
	}
	pf.Services = parseMaster(out)
	if out, err = run("-P", "-x"); err != nil {
		return nil, err
	}
	for key, v := range parseAssignments(out) {
		// service/type/parameter
		parts := strings.SplitN(key, "/", 3)
		if len(parts) != 3 {
			continue
		}
		for i := range pf.Services {
			if s := &pf.Services[i]; s.Name == parts[0] && s.Type == parts[1] {
				s.Overrides[parts[2]] = v
			}
		}
	}
	return pf, nil
}

// parseAssignments reads "name = value" lines.
func parseAssignments(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " = "); ok {
			m[strings.TrimSpace(name)] = strings.TrimSpace(value)
		} else if name, ok := strings.CutSuffix(sc.Text(), " ="); ok {
			m[strings.TrimSpace(name)] = ""
		}
	}
	return m
}

// parseMaster reads postconf -M output: one line per service.
func parseMaster(out string) []Service {
	var services []Service
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		services = append(services, Service{Name: f[0], Type: f[1], Chroot: f[4] == "y", Command: path.Base(f[7]), Overrides: map[string]string{}})
	}
	return services
}

// Get is a parameter as service s sees it: its -o override, else main.cf.
func (pf *Postfix) Get(s *Service, name string) string {
	if s != nil {
		if v, ok := s.Overrides[name]; ok {
			return v
		}
	}
	return pf.Main[name]
}

// Service returns the first service with that name and type, or nil.
func (pf *Postfix) Service(name, typ string) *Service {
	for i := range pf.Services {
		if pf.Services[i].Name == name && pf.Services[i].Type == typ {
			return &pf.Services[i]
		}
	}
	return nil
}

// list splits a Postfix list value (commas and/or white space).
func list(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}
