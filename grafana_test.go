package caddyidentity

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// metricRef finds the metric names in a query; reasonRef the reason label
// values it compares with.
var (
	metricRef = regexp.MustCompile(`\b` + metricsNamespace + `_[a-z_]+\b`)
	reasonRef = regexp.MustCompile(`reason\s*!?=~?\s*"([^"]*)"`)
	fqName    = regexp.MustCompile(`fqName: "([^"]+)"`)
	labelsRef = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// registeredMetrics returns the names of the handler's collectors and the
// variable labels of each.
func registeredMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		for _, c := range processMetrics().all() {
			c.Describe(ch)
		}
		close(ch)
	}()
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("unreadable descriptor %s", d)
		}
		var labels []string
		if l := labelsRef.FindStringSubmatch(d.String()); l != nil && l[1] != "" {
			for _, n := range strings.Split(l[1], ",") {
				labels = append(labels, strings.TrimSpace(n))
			}
		}
		out[m[1]] = labels
	}
	return out
}

// dashboardQueries returns the expr of every target of the dashboard.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("examples/grafana/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

func TestGrafanaExamplesQueryExistingMetrics(t *testing.T) {
	known := registeredMetrics(t)
	reasonLabels := map[string]bool{}
	for i := reason(1); i < numReasons; i++ {
		reasonLabels[reasons[i].label] = true
	}
	alerts, err := os.ReadFile("examples/grafana/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"dashboard.json": strings.Join(dashboardQueries(t), "\n"),
		"alerts.yml":     string(alerts),
	} {
		used := metricRef.FindAllString(text, -1)
		if len(used) == 0 {
			t.Errorf("%s queries no metric of the handler", name)
		}
		for _, m := range used {
			if _, ok := known[m]; !ok {
				t.Errorf("%s queries %s, which the handler does not export", name, m)
			}
		}
		for _, m := range reasonRef.FindAllStringSubmatch(text, -1) {
			if !reasonLabels[m[1]] {
				t.Errorf("%s compares reason with %q, which is no rejection reason", name, m[1])
			}
		}
		for _, by := range regexp.MustCompile(`by \(([^)]*)\)`).FindAllStringSubmatch(text, -1) {
			for _, l := range strings.Split(by[1], ",") {
				l = strings.TrimSpace(l)
				found := false
				for _, labels := range known {
					found = found || slices.Contains(labels, l)
				}
				if !found {
					t.Errorf("%s groups by %q, a label no metric of the handler has", name, l)
				}
			}
		}
	}
}
