
Ü
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call'
pager@acme.example+1 (650) 253-0000"
integrations@acme.example"en2
escalations@acme.example:$
support@acme.exampleAcme SupportBv
Mars/Olympus09:00"17:0009:00"17:00&
america/los_angeles09:00"17:00
UTC+209:00"17:00
operational_support