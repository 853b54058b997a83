package awssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// EC2's vCPU quotas: running instances of a kind may hold at most a
// quota's value of vCPUs in a Region, On-Demand and Spot apart. The codes
// are Service Quotas'; the sandbox knows the kinds of its instance types.
const (
	QuotaOnDemandStandard = "L-1216C47A"
	QuotaOnDemandG        = "L-DB2E81BA"
	QuotaOnDemandP        = "L-417A185B"
	QuotaSpotStandard     = "L-34B43A08"
)

var quotaNames = map[string]string{
	QuotaOnDemandStandard: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
	QuotaOnDemandG:        "Running On-Demand G and VT instances",
	QuotaOnDemandP:        "Running On-Demand P instances",
	QuotaSpotStandard:     "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
}

// defaultQuotas are the sandbox account's values: roomy, as an account
// that runs EKS has them; `noderoll sandbox quota` lowers one.
func defaultQuotas() map[string]float64 {
	return map[string]float64{QuotaOnDemandStandard: 10000, QuotaOnDemandG: 512, QuotaOnDemandP: 384, QuotaSpotStandard: 10000}
}

// quotaOf is the quota an instance type's launches count against, "" for
// kinds the sandbox does not limit.
func quotaOf(instanceType string, spot bool) string {
	family := strings.SplitN(instanceType, ".", 2)[0]
	letter := family[:1]
	switch {
	case strings.ContainsRune("acdhimrtz", rune(letter[0])) && !strings.HasPrefix(family, "inf") && !strings.HasPrefix(family, "trn"):
		if spot {
			return QuotaSpotStandard
		}
		return QuotaOnDemandStandard
	case letter == "g" && !spot:
		return QuotaOnDemandG
	case letter == "p" && !spot:
		return QuotaOnDemandP
	}
	return ""
}

// vcpusInUse sums the vCPUs of running and pending instances counting
// against a quota; callers hold mu.
func (a *Account) vcpusInUse(code string) int {
	n := 0
	for _, i := range a.instances {
		if (i.State == StatePending || i.State == StateRunning) && quotaOf(i.InstanceType, i.Spot) == code {
			n += instanceVCPUs[i.InstanceType]
		}
	}
	return n
}

// SetQuota sets a quota's value (vCPUs); launches past it fail as EC2's do.
func (a *Account) SetQuota(code string, value float64) error {
	if _, ok := quotaNames[code]; !ok {
		return fmt.Errorf("quota %s: the sandbox knows %s", code, strings.Join(knownQuotas(), ", "))
	}
	if value < 0 {
		return fmt.Errorf("quota %s: %g vCPUs; want 0 or more", code, value)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.quotas[code] = value
	return nil
}

func knownQuotas() []string {
	var out []string
	for c := range quotaNames {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

const quotasContentType = "application/x-amz-json-1.1"

// serveServiceQuotas answers the awsJson1.1 call noderoll makes:
// GetServiceQuota for EC2's vCPU quotas.
func (s *Server) serveServiceQuotas(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "ServiceQuotasV20190624.")
	if e := s.acct.throttled("servicequotas"); e != nil {
		s.acct.logCall(Call{Service: "servicequotas", Action: action, AccessKey: accessKeyOf(r), Error: e.Code})
		writeJSONError(w, e, quotasContentType)
		return
	}
	s.acct.logCall(Call{Service: "servicequotas", Action: action, AccessKey: accessKeyOf(r)})
	if f := s.acct.takeFault("servicequotas", action); f != nil {
		f.stall(r.Context())
		if e := f.apiError(); e != nil {
			writeJSONError(w, e, quotasContentType)
			return
		}
	}
	if action != "GetServiceQuota" {
		writeJSONError(w, &APIError{Code: "UnknownOperationException", Message: action + " is not served by this endpoint.", Status: 400}, quotasContentType)
		return
	}
	var req struct {
		ServiceCode, QuotaCode string
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ServiceCode == "" || req.QuotaCode == "" {
		writeJSONError(w, &APIError{Code: "ValidationException", Message: "1 validation error detected: ServiceCode and QuotaCode are required.", Status: 400}, quotasContentType)
		return
	}
	a := s.acct
	a.mu.Lock()
	v, ok := a.quotas[req.QuotaCode]
	a.mu.Unlock()
	if req.ServiceCode != "ec2" || !ok {
		writeJSONError(w, &APIError{Code: "NoSuchResourceException", Message: fmt.Sprintf("The request failed because the specified quota %s of service %s does not exist.", req.QuotaCode, req.ServiceCode), Status: 400}, quotasContentType)
		return
	}
	writeJSON(w, http.StatusOK, quotasContentType, map[string]any{"Quota": map[string]any{
		"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
		"QuotaArn":  fmt.Sprintf("arn:aws:servicequotas:%s:%s:ec2/%s", a.Region, a.AccountID, req.QuotaCode),
		"QuotaCode": req.QuotaCode, "QuotaName": quotaNames[req.QuotaCode], "Value": v, "Unit": "None",
		"Adjustable": true, "GlobalQuota": false,
	}})
}
