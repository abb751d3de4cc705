// <linux/kvm.h> with the C++ layout bug of Debian 12's linux-libc-dev (6.1)
// fixed. Include this instead of <linux/kvm.h>, everywhere.
//
// That version declares flexible arrays through __DECLARE_FLEX_ARRAY, which
// wraps them beside an empty struct; in C++ an empty struct takes one byte, so
// kvm_cpuid2, kvm_msrs, kvm_msr_list, kvm_xsave, kvm_irq_routing, ... grow and
// every ioctl number derived from their size (KVM_GET_SUPPORTED_CPUID,
// KVM_GET_MSRS, KVM_GET_XSAVE, KVM_SET_GSI_ROUTING, ...) differs from the
// kernel's: the kernel answers EINVAL. Later kernels' headers define the macro
// for C++ as a zero-length array, as done here. A translation unit that
// included <linux/kvm.h> earlier keeps the broken layout: kvm/ioctl.h
// static_asserts the sizes for this layer's own sources.
#pragma once

#include <linux/stddef.h>

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>
