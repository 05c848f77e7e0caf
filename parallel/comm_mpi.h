/* parallel/comm_mpi.h - struct comm (core/comm.h) over an MPI communicator: the CPU backend's collectives. */
#ifndef REELFARM_PARALLEL_COMM_MPI_H
#define REELFARM_PARALLEL_COMM_MPI_H

#include <mpi.h>

#include "core/comm.h"

/* A comm over a duplicate of `mc` (the caller keeps ownership of mc). name: "tp", "sp", ... */
struct comm *comm_mpi_create(MPI_Comm mc, const char *name);
/* The underlying MPI communicator of a comm made by comm_mpi_create. */
MPI_Comm comm_mpi_handle(const struct comm *c);

#endif /* REELFARM_PARALLEL_COMM_MPI_H */
