package awssim

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

var stsActions = map[string]queryAction{
	"AssumeRole":        assumeRole,
	"GetCallerIdentity": getCallerIdentity,
}

// Role is an IAM role that may be assumed, with the external id its trust
// policy demands ("" for none).
type Role struct {
	ARN, ExternalID string
}

// session is what an access key of assumed-role credentials stands for.
type session struct {
	roleARN, name string
	expires       time.Time
}

// CreateRole lets callers assume a role, as its trust policy would.
func (a *Account) CreateRole(arn, externalID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.roles[arn] = Role{ARN: arn, ExternalID: externalID}
}

var (
	roleARNRE       = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	roleARNPrefixRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/`)
	sessionNameRE   = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// assumeRole follows STS AssumeRole: RoleArn and RoleSessionName required,
// DurationSeconds 900 to 43200 (default 3600), and AccessDenied, worded as
// STS words it, when the role cannot be assumed or the external id does not
// match its trust policy.
func assumeRole(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	arn, name := form.Get("RoleArn"), form.Get("RoleSessionName")
	switch {
	case arn == "":
		return nil, validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	case name == "":
		return nil, validation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	case !roleARNRE.MatchString(arn):
		return nil, validation("%s is invalid", arn)
	case !sessionNameRE.MatchString(name):
		return nil, validation("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", name)
	}
	duration, set, err := optInt(form, "DurationSeconds")
	if err != nil {
		return nil, err
	}
	if !set {
		duration = 3600
	}
	if duration < 900 || duration > 43200 {
		return nil, validation("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", duration)
	}
	role, ok := a.roles[arn]
	if !ok || role.ExternalID != form.Get("ExternalId") {
		return nil, &APIError{Code: "AccessDenied", Status: 403,
			Message: fmt.Sprintf("User: arn:aws:iam::%s:user/sandbox is not authorized to perform: sts:AssumeRole on resource: %s", a.AccountID, arn)}
	}
	key := a.nextID("ASIA", 16)
	expires := a.clock.Now().Add(time.Duration(duration) * time.Second).UTC()
	a.sessions[key] = session{roleARN: arn, name: name, expires: expires}
	roleName := roleNameOf(arn)
	type result struct {
		Credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"Credentials"`
		AssumedRoleUser struct {
			Arn           string `xml:"Arn"`
			AssumedRoleID string `xml:"AssumedRoleId"`
		} `xml:"AssumedRoleUser"`
	}
	var res result
	res.Credentials.AccessKeyID, res.Credentials.SecretAccessKey = key, "sandbox-secret-"+key
	res.Credentials.SessionToken, res.Credentials.Expiration = "sandbox-session-"+key, awsTime(expires)
	res.AssumedRoleUser.Arn = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", a.AccountID, roleName, name)
	res.AssumedRoleUser.AssumedRoleID = "AROA" + key[4:] + ":" + name
	return &queryResp{action: "AssumeRole", ns: stsNS, result: res}, nil
}

// roleNameOf returns the role's name (its path included) from its ARN.
func roleNameOf(arn string) string {
	return arn[len(roleARNPrefixRE.FindString(arn)):]
}

// getCallerIdentity says who signed the call: the assumed role for keys
// AssumeRole handed out, the account's user otherwise.
func getCallerIdentity(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	}
	res := result{Arn: fmt.Sprintf("arn:aws:iam::%s:user/sandbox", a.AccountID), UserID: "AIDASANDBOX", Account: a.AccountID}
	if s, ok := a.sessions[form.Get(callerKeyParam)]; ok {
		res.Arn = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", a.AccountID, roleNameOf(s.roleARN), s.name)
		res.UserID = "AROA:" + s.name
	}
	return &queryResp{action: "GetCallerIdentity", ns: stsNS, result: res}, nil
}

// callerKeyParam carries the signing access key into a query action; it is
// set by the server from the Authorization header, never by the client.
const callerKeyParam = "_sim.CallerAccessKey"
