-- One database per service: services never read each other's tables.
CREATE DATABASE identity;
CREATE DATABASE catalog;
CREATE DATABASE enrollment;
CREATE DATABASE automation;
CREATE DATABASE reporting;
