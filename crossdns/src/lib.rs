//! DNS for services exported across clusters.
