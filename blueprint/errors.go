package blueprint

import (
	"errors"
	"fmt"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/yamlproblem"
)

var (
	// ErrInvalidManifest is matched (errors.Is) by a *ManifestError.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrUnknownCommand is matched by an *ArgumentError whose command is
	// not in the manifest. It is driver.ErrUnknownCommand.
	ErrUnknownCommand = driver.ErrUnknownCommand
	// ErrInvalidArgument is matched by every other *ArgumentError. It is
	// driver.ErrBadArgument, so one errors.Is answers for the manifest's
	// checks and the driver's.
	ErrInvalidArgument = driver.ErrBadArgument
)

// Problem is one mistake in a manifest, at its position (the line of the
// field, or of its parent when the field is missing). A warning is in
// Manifest.Warnings, never in a ManifestError.
type Problem = yamlproblem.Problem

// ManifestError holds every problem found in a manifest, in file order.
type ManifestError struct {
	File     string
	Problems []Problem
}

func (e *ManifestError) Error() string {
	if len(e.Problems) == 1 {
		return "blueprint: " + e.Problems[0].String()
	}
	return fmt.Sprintf("blueprint: %d problems in %s, the first: %s", len(e.Problems), e.File, e.Problems[0])
}

// Is makes errors.Is(err, ErrInvalidManifest) true.
func (e *ManifestError) Is(target error) bool { return target == ErrInvalidManifest }

// Rule names the check that an argument failed.
type Rule string

// The rules of CheckCommand.
const (
	RuleUnknownCommand Rule = "unknown_command"
	RuleRequired       Rule = "required"
	RuleType           Rule = "type"
	RuleEnum           Rule = "enum"
	RuleMin            Rule = "min"
	RuleMax            Rule = "max"
)

// ArgumentError is a command request that the manifest rejects. Its message
// names the command, the argument and the rule, ready to be sent back as an
// error response. Besides this type, errors.As finds a *driver.ArgumentError
// in it (except for RuleUnknownCommand), so that a caller checks for one
// type whether the manifest or the driver rejected an argument.
type ArgumentError struct {
	Command  string
	Argument string // empty for RuleUnknownCommand
	Rule     Rule
	Message  string
	problem  string // Message without the command and argument
}

func (e *ArgumentError) Error() string { return e.Message }

// Is matches ErrUnknownCommand or ErrInvalidArgument according to the rule.
func (e *ArgumentError) Is(target error) bool {
	if e.Rule == RuleUnknownCommand {
		return target == ErrUnknownCommand
	}
	return target == ErrInvalidArgument
}

// As fills a **driver.ArgumentError with the same command, argument and
// problem.
func (e *ArgumentError) As(target any) bool {
	t, ok := target.(**driver.ArgumentError)
	if !ok || e.Rule == RuleUnknownCommand {
		return false
	}
	*t = &driver.ArgumentError{Command: e.Command, Argument: e.Argument, Problem: e.problem}
	return true
}

// ViolationKind says what is wrong with a telemetry or property value. With
// the attribute name it makes a key for reporting a problem once.
type ViolationKind string

// The kinds of Violation.
const (
	Undeclared      ViolationKind = "undeclared"       // the attribute is not in the manifest
	WrongType       ViolationKind = "wrong_type"       // the value is not of the declared type
	NotInEnum       ViolationKind = "not_in_enum"      // the value is not one of the declared enum values
	UndeclaredAlert ViolationKind = "undeclared_alert" // an alert name not in the manifest's alerts
)

// Violation is a telemetry or property value that breaks the manifest.
type Violation struct {
	// Attribute is the attribute's name; for UndeclaredAlert found in the
	// message's alerts list, it is the alert's name.
	Attribute string
	Problem   ViolationKind
	Message   string
}

func (v Violation) String() string { return v.Message }
