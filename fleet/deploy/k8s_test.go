package deploy_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sObject is the part of the manifests the test reads; unknown fields are
// ignored (kubectl's schema is not vendored here).
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas     *int `yaml:"replicas"`
		MinAvailable any  `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		// Service
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		ServiceSelector map[string]string `yaml:"-"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    int   `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// k8sManifests decodes every document of every file in dir.
func k8sManifests(t *testing.T, dir string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no manifests (%v)", dir, err)
	}
	var objs []k8sObject
	for _, f := range files {
		docs, err := yamlDocs(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			b, _ := yaml.Marshal(d)
			var o k8sObject
			if err := yaml.Unmarshal(b, &o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", f)
			}
			spec, _ := d["spec"].(map[string]any)
			if sel, ok := spec["selector"].(map[string]any); ok && o.Kind == "Service" {
				o.Spec.ServiceSelector = map[string]string{}
				for k, v := range sel {
					o.Spec.ServiceSelector[k] = fmt.Sprint(v)
				}
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// outOfBandSecrets are the Secrets secret.yaml tells the operator to create
// by hand (kubectl create secret generic NAME).
func outOfBandSecrets(t *testing.T) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`create secret generic ([a-z0-9-]+)`).FindAllStringSubmatch(string(readFile(t, "k8s/secret.yaml")), -1) {
		out[m[1]] = true
	}
	return out
}

func TestKubernetes(t *testing.T) {
	objs := k8sManifests(t, "k8s")
	secrets := map[string]map[string]string{}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
		if o.Kind == "Secret" {
			secrets[o.Metadata.Name] = o.StringData
		}
		if o.Kind != "Namespace" && o.Metadata.Namespace != "edgefleet" {
			t.Errorf("%s %s: namespace %q, want edgefleet", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	for _, k := range []string{"Namespace", "Secret", "Deployment", "Service", "PodDisruptionBudget"} {
		if kinds[k] == 0 {
			t.Errorf("k8s/: no %s", k)
		}
	}
	oob := outOfBandSecrets(t)
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		where := "k8s Deployment " + o.Metadata.Name
		if o.Spec.Replicas == nil || *o.Spec.Replicas < 2 {
			t.Errorf("%s: replicas %v, want 2 or more", where, o.Spec.Replicas)
		}
		if !subset(o.Spec.Selector.MatchLabels, o.Spec.Template.Metadata.Labels) {
			t.Errorf("%s: selector %v does not match the pod labels", where, o.Spec.Selector.MatchLabels)
		}
		ps := o.Spec.Template.Spec
		if ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot || ps.SecurityContext.RunAsUser == 0 {
			t.Errorf("%s: securityContext must set runAsNonRoot and a non-zero runAsUser", where)
		}
		for _, c := range ps.Containers {
			checkK8sContainer(t, where+" container "+c.Name, o, c, secrets, oob)
		}
		for _, s := range objs {
			if (s.Kind == "Service" && !subset(s.Spec.ServiceSelector, o.Spec.Template.Metadata.Labels)) ||
				(s.Kind == "PodDisruptionBudget" && !subset(s.Spec.Selector.MatchLabels, o.Spec.Template.Metadata.Labels)) {
				t.Errorf("%s %s: selector does not match %s's pods", s.Kind, s.Metadata.Name, where)
			}
			if s.Kind == "Service" {
				for _, p := range s.Spec.Ports {
					if !hasPort(ps.Containers[0], p.TargetPort) {
						t.Errorf("Service %s port %s: targetPort %v is no containerPort of %s", s.Metadata.Name, p.Name, p.TargetPort, where)
					}
				}
			}
		}
	}
}

func checkK8sContainer(t *testing.T, where string, o k8sObject, c k8sContainer, secrets map[string]map[string]string, oob map[string]bool) {
	t.Helper()
	args := append(append([]string{}, c.Command...), c.Args...)
	if len(c.Command) > 0 {
		args = args[1:]
	}
	for _, err := range checkFlags(fleetdFlags(t), where+" args", args) {
		t.Error(err)
	}
	for _, p := range []struct {
		name  string
		probe *k8sProbe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != "/healthz" || !hasPort(c, p.probe.HTTPGet.Port) {
			t.Errorf("%s: %s must be httpGet /healthz on a containerPort", where, p.name)
		}
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: securityContext must set readOnlyRootFilesystem true and allowPrivilegeEscalation false", where)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("%s: resources need cpu and memory requests and a memory limit", where)
	}
	for _, e := range c.Env {
		if r := e.ValueFrom.SecretKeyRef; r != nil {
			if _, ok := secrets[r.Name][r.Key]; !ok {
				t.Errorf("%s: env %s refers to Secret %s key %s, which k8s/ does not define", where, e.Name, r.Name, r.Key)
			}
		}
	}
	for _, v := range o.Spec.Template.Spec.Volumes {
		if v.Secret != nil && secrets[v.Secret.SecretName] == nil && !oob[v.Secret.SecretName] {
			t.Errorf("%s: volume %s uses Secret %s, which neither k8s/ defines nor secret.yaml says to create", where, v.Name, v.Secret.SecretName)
		}
	}
	cfg, err := k8sConfig(o, c, args, secrets)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if err := checkConfig(t, where, []byte(cfg), args); err != nil {
		t.Error(err)
	}
	listen, _, err := listenPorts([]byte(cfg))
	if err != nil {
		t.Fatalf("%s: config: %v", where, err)
	}
	var ports []int
	for _, p := range c.Ports {
		ports = append(ports, p.ContainerPort)
	}
	if a := o.Spec.Template.Metadata.Annotations["prometheus.io/port"]; a != "" {
		n, _ := strconv.Atoi(a)
		ports = append(ports, n)
	}
	for _, err := range checkPublished(where+" ports", listen, ports) {
		t.Error(err)
	}
}

// k8sConfig follows --config to its volume mount and the Secret key behind it.
func k8sConfig(o k8sObject, c k8sContainer, args []string, secrets map[string]map[string]string) (string, error) {
	path, ok := flagValue(args, "config")
	if !ok {
		return "", fmt.Errorf("no --config in args %v", args)
	}
	for _, m := range c.VolumeMounts {
		file := ""
		switch {
		case m.MountPath == path && m.SubPath != "":
			file = m.SubPath
		case strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/"):
			file = strings.TrimPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		default:
			continue
		}
		for _, v := range o.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			key := file
			for _, it := range v.Secret.Items {
				if it.Path == file {
					key = it.Key
				}
			}
			cfg, ok := secrets[v.Secret.SecretName][key]
			if !ok {
				return "", fmt.Errorf("--config %s: Secret %s has no key %s", path, v.Secret.SecretName, key)
			}
			return cfg, nil
		}
	}
	return "", fmt.Errorf("--config %s is not mounted from a Secret defined in k8s/", path)
}

func hasPort(c k8sContainer, port any) bool {
	for _, p := range c.Ports {
		if port == p.Name || port == p.ContainerPort {
			return true
		}
	}
	return false
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
