package awssim

import (
	"net/url"
	"slices"
	"strings"
)

// The sandbox's groups were made by no CloudFormation stack, so its
// CloudFormation has none: enough for eksctl to look for a node group's
// stack, find none and take EKS's API path, as it does for groups made
// with the console, awscli or Terraform.

const cloudformationNS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

var cloudformationActions = map[string]queryAction{
	"ListStacks":     listStacks,
	"DescribeStacks": describeStacks,
}

// stackStatuses are CloudFormation's StackStatus values, which
// ListStacks's StackStatusFilter takes.
var stackStatuses = strings.Fields(`CREATE_IN_PROGRESS CREATE_FAILED CREATE_COMPLETE ROLLBACK_IN_PROGRESS
ROLLBACK_FAILED ROLLBACK_COMPLETE DELETE_IN_PROGRESS DELETE_FAILED DELETE_COMPLETE UPDATE_IN_PROGRESS
UPDATE_COMPLETE_CLEANUP_IN_PROGRESS UPDATE_COMPLETE UPDATE_FAILED UPDATE_ROLLBACK_IN_PROGRESS
UPDATE_ROLLBACK_FAILED UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS UPDATE_ROLLBACK_COMPLETE
REVIEW_IN_PROGRESS IMPORT_IN_PROGRESS IMPORT_COMPLETE IMPORT_ROLLBACK_IN_PROGRESS IMPORT_ROLLBACK_FAILED
IMPORT_ROLLBACK_COMPLETE`)

// listStacks follows ListStacks: every status filter must be a
// StackStatus; the account has no stacks.
func listStacks(_ *Account, form url.Values) (any, error) {
	for k, v := range form {
		if strings.HasPrefix(k, "StackStatusFilter.member.") && !slices.Contains(stackStatuses, v[0]) {
			return nil, validation("1 validation error detected: Value '[%s]' at 'stackStatusFilter' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [%s]]",
				v[0], strings.Join(stackStatuses, ", "))
		}
	}
	type result struct {
		StackSummaries struct {
			Members []struct{} `xml:"member"`
		} `xml:"StackSummaries"`
	}
	return &queryResp{action: "ListStacks", ns: cloudformationNS, result: result{}}, nil
}

// describeStacks follows DescribeStacks: all stacks (none) without a
// StackName, and CloudFormation's ValidationError for a named one.
func describeStacks(_ *Account, form url.Values) (any, error) {
	if name := form.Get("StackName"); name != "" {
		return nil, validation("Stack with id %s does not exist", name)
	}
	type result struct {
		Stacks struct {
			Members []struct{} `xml:"member"`
		} `xml:"Stacks"`
	}
	return &queryResp{action: "DescribeStacks", ns: cloudformationNS, result: result{}}, nil
}
