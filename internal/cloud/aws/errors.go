package aws

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// notFoundCodes are the AWS error codes that mean "no such thing".
var notFoundCodes = map[string]bool{
	"ResourceNotFoundException":                   true, // EKS
	"ParameterNotFound":                           true, // SSM
	"InvalidAMIID.NotFound":                       true,
	"InvalidAMIID.Malformed":                      true,
	"InvalidInstanceID.NotFound":                  true,
	"InvalidLaunchTemplateId.NotFound":            true,
	"InvalidLaunchTemplateId.VersionNotFound":     true,
	"InvalidLaunchTemplateName.NotFoundException": true,
}

func code(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool { return notFoundCodes[code(err)] }

// isInstanceGone reports the Auto Scaling error for an instance that is no
// longer in any group.
func isInstanceGone(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationError" &&
		strings.Contains(apiErr.ErrorMessage(), "not found")
}
