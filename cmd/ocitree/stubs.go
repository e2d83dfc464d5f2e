package main

import "github.com/spf13/cobra"

func newRepoCheckoutCmd() *cobra.Command { return &cobra.Command{Use: "checkout"} }
func newRepoFsckCmd() *cobra.Command     { return &cobra.Command{Use: "fsck"} }
func newRepoRefsCmd() *cobra.Command     { return &cobra.Command{Use: "refs"} }
func newRepoShowCmd() *cobra.Command     { return &cobra.Command{Use: "show"} }
func newRepoLsCmd() *cobra.Command       { return &cobra.Command{Use: "ls"} }
func newRepoPruneCmd() *cobra.Command    { return &cobra.Command{Use: "prune"} }
