// Package pack packs components (sets of content objects that change
// together, such as packages) into a bounded number of image layers, by
// expected re-download cost, keeping the layout of a prior build where it
// can so that unchanged layers keep their digests.
package pack
