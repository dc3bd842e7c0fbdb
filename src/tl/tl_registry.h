/*
 * The transports built in, one line each: MF_TL_TRANSPORT(name) names the
 * ops table mf_tl_<name>_ops of src/tl/<name>/.  No include guard: tl.c
 * expands the list twice.  The order breaks ties between transports whose
 * capabilities are equal for a peer.
 */
MF_TL_TRANSPORT(shm) /* peers of this host: mapped memory */
#if MF_HAVE_UCX
MF_TL_TRANSPORT(ucx) /* peers on any host: RDMA through UCX */
#endif
MF_TL_TRANSPORT(tcp) /* peers on any host */
