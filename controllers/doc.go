// Package controllers is the home of the per-cluster reconcilers that the
// agent runs, one sub-package per reconciled kind (for example
// controllers/serviceexport). Each reconciler follows the house style: a
// Reconcile that reads like a table of contents, phases that gather, decide
// with a pure function and act idempotently, and status as conditions.
//
// This package itself holds no code; the sub-packages depend on apis/ and
// on controller-runtime, never on gateway/.
package controllers
